"""Hardware presets: every shipped preset validates; bad YAML is one clear error naming the key."""
from __future__ import annotations

import pytest
import yaml

from netfrontier.errors import SpecError, UnknownHardwareError
from netfrontier.hardware.registry import PRESET_DIR, get_hardware, preset_names
from netfrontier.hardware.spec import LOOP_DIMS

REQUIRED_PRESETS = {"img-series4-1core", "img-series4-8core", "tpu-v1", "dpu-b4096-zcu104",
                    "jetson-xavier-nx", "nvidia-t4", "nvidia-h100-sxm"}


def test_required_presets_ship():
    assert REQUIRED_PRESETS <= set(preset_names())


@pytest.mark.parametrize("name", preset_names())
def test_preset_is_valid_and_sourced(name):
    hw = get_hardware(name)
    assert hw.name == name
    assert hw.peak_macs_per_s(next(iter(hw.macs_per_cycle))) > 1e9
    assert set(hw.tile) == set(LOOP_DIMS)
    for key in ("clock_hz", "onchip_bytes", "dram_bytes_per_s", "supported_ops", "fallback"):
        assert hw.sources.get(key), f"{name}: no source for {key}"


def test_seed_figures():
    one, eight = get_hardware("img-series4-1core"), get_hardware("img-series4-8core")
    assert one.macs_per_cycle["int8"] == 4096 and one.clock_hz == 1.5e9
    assert one.onchip_bytes == 2**20 and one.dram_bytes_per_s == 12e9
    assert eight.cores == 8 and eight.dram_bytes_per_s == 115e9
    assert abs(eight.onchip_bytes - 88e6) / 88e6 < 0.05
    assert set(range(4, 17)) <= set(one.weight_bits)
    tpu = get_hardware("tpu-v1")
    assert tpu.macs_per_cycle["int8"] == 65536 and tpu.clock_hz == 700e6
    for fixed in ("tpu-v1", "dpu-b4096-zcu104"):
        ops = set(get_hardware(fixed).supported_ops)
        assert not ops & {"attention", "softmax", "layernorm", "gelu"}


def _write(tmp_path, data, name="mine.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if isinstance(data, dict) else data)
    return p


def _base():
    return yaml.safe_load((PRESET_DIR / "img-series4-1core.yaml").read_text())


def test_user_yaml_is_accepted_wherever_a_name_is(tmp_path):
    d = _base()
    d["name"] = "my-npu"
    d["dram_bytes_per_s"] = 24e9
    hw = get_hardware(str(_write(tmp_path, d)))
    assert hw.name == "my-npu" and hw.dram_bytes_per_s == 24e9


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(clock_hzz=1e9), "unknown key 'clock_hzz'"),
    (lambda d: d.pop("dram_bytes_per_s"), "missing key 'dram_bytes_per_s'"),
    (lambda d: d.update(clock_hz=1.5e15), "'clock_hz' = .* is implausible"),
    (lambda d: d.update(clock_hz="fast"), "'clock_hz' must be a number"),
    (lambda d: d["sources"].pop("onchip_bytes"), "'onchip_bytes' has no entry under 'sources'"),
    (lambda d: d.update(supported_ops=["conv", "warp"]), "unknown operator kind 'warp'"),
    (lambda d: d["macs_per_cycle"].update(int3=5), "unknown precision 'int3'"),
    (lambda d: d["tile"].update(k=4), "unknown loop dimension 'k'"),
    (lambda d: d.update(default_wbits=3), "'default_wbits' = 3 is not among 'weight_bits'"),
    # impossible figures (each gave a negative, infinite or crashing result before)
    (lambda d: d["fallback"].update(overhead_s=-73), "'fallback.overhead_s' = -73 is implaus"),
    (lambda d: d["fallback"].update(ops_per_s=0), "'fallback.ops_per_s' = 0 is implausible"),
    (lambda d: d.update(energy={"pj_per_dram_byte": -5}), "'energy.pj_per_dram_byte' = -5"),
    (lambda d: d.update(energy={"pj_per_mac": {"int8": -1}}), "'energy.pj_per_mac.int8' = -1"),
    (lambda d: d.update(calibration={"fixed_s": -1e-3}), "'calibration.fixed_s' = -0.001"),
    (lambda d: d.update(calibration={"switch_s": -1}), "'calibration.switch_s' = -1"),
    (lambda d: d.update(calibration={"host_s": {"conv": -2e-6}}), "'calibration.host_s.conv'"),
    (lambda d: d.update(calibration={"runtime": "sync", "device_s": {"conv": [[1, 2, 3]]}}),
     r"'calibration.device_s.conv\[0\]' must be an \[x, y\] pair"),
    (lambda d: d.update(calibration={"runtime": "sync", "device_s": {"conv": "fast"}}),
     "'calibration.device_s.conv' must be a non-empty list"),
    (lambda d: d.update(calibration={"runtime": "sync", "device_s": {"conv": [[-3, "x"]]}}),
     r"'calibration.device_s.conv\[0\].y' must be a number"),
    (lambda d: d.update(calibration={"runtime": "sync", "device_s": {"conv": [[-3, -4], [-5, -3]]}}),
     "strictly increasing x"),
    (lambda d: d.update(supported_ops=[]), "'supported_ops' is empty"),
    (lambda d: d.update(name=""), "'name' must not be empty"),
    (lambda d: d.update(name="../../etc/x"), "'name' = '../../etc/x' must be"),
    (lambda d: d.update(default_wbits=float("-inf")), "'default_wbits' must be finite"),
    (lambda d: d.update(weight_bits=[8, True]), "'weight_bits' must list distinct bit depths"),
    (lambda d: d.update(macs_per_cycle={}), "'macs_per_cycle' must name at least one"),
    (lambda d: d.update(kind="fpga"), "'kind' must be one of"),
    (lambda d: d["fallback"].update(host=""), "'fallback.host' must not be empty"),
])
def test_bad_values_name_key_and_file(tmp_path, mutate, message):
    d = _base()
    mutate(d)
    p = _write(tmp_path, d)
    with pytest.raises(SpecError, match=message) as exc:
        get_hardware(str(p))
    assert str(p.name) in str(exc.value)


def test_duplicate_keys_non_utf8_and_minus_inf_are_one_error(tmp_path):
    text = (PRESET_DIR / "img-series4-1core.yaml").read_text()
    dup = _write(tmp_path, text + "clock_hz: 3.0e9\n", "dup.yaml")
    with pytest.raises(SpecError, match="dup.yaml: malformed YAML at line .*duplicate key 'clock_hz'"):
        get_hardware(str(dup))
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(text.replace("Imagination", "Imaginaci\u00f3n").encode("latin-1"))
    with pytest.raises(SpecError, match="latin.yaml: not UTF-8 text"):
        get_hardware(str(latin))
    inf = _write(tmp_path, text.replace("default_wbits: 8", "default_wbits: -.inf"), "inf.yaml")
    with pytest.raises(SpecError, match="'default_wbits' must be finite"):
        get_hardware(str(inf))


def test_malformed_yaml(tmp_path):
    p = _write(tmp_path, "name: [unclosed\n  clock: 3\n")
    with pytest.raises(SpecError, match="malformed YAML at line"):
        get_hardware(str(p))
    with pytest.raises(SpecError, match="top level must be a mapping"):
        get_hardware(str(_write(tmp_path, "- a\n- b\n", "list.yaml")))


def test_unknown_preset_suggests():
    with pytest.raises(UnknownHardwareError, match="img-series4-1core"):
        get_hardware("img-series4-1cor")
    with pytest.raises(UnknownHardwareError, match="does not exist"):
        get_hardware("nowhere/my.yaml")
