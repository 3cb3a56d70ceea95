"""The README's screenshots of `netfrontier serve`: each page in headless Chromium, as a user
would leave it, written to docs/img/serve_<page>.png.

    .venv/bin/python benchmarks/serve_screenshots.py [--store PATH] [--out docs/img]

Needs the zoo in the store (`netfrontier zoo` first) and Chromium (`make system-deps`).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    from netfrontier.serve import ZooState, create_app
    from netfrontier.serve.app import serve_in_thread
    from netfrontier.serve.browser import plot_version, start_chrome, wait_for
    from netfrontier.store import default_path

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    state = ZooState(a.store or default_path())
    state.load()
    with serve_in_thread(create_app(state, REPO / "benchmarks" / "results")) as url, \
            tempfile.TemporaryDirectory() as profile:
        d = start_chrome(Path(profile), 1400, 1050)
        try:
            def shot(name: str) -> None:
                errors = [e["message"] for e in d.get_log("browser") if e["level"] == "SEVERE"]
                if errors:
                    raise SystemExit(f"{name}: console errors: {errors}")
                path = a.out / f"serve_{name}.png"
                d.save_screenshot(str(path))
                print(path)

            def drawn(page: str, plot: str = "plot", n: int = 1) -> None:
                d.get(url + page)
                wait_for(d, lambda d: plot_version(d, plot) >= n, page)

            # the frontier, a model's point hovered
            drawn("/?hw=img-series4-1core")
            trace, index = d.execute_script(  # EfficientNet-B0's point, wherever it is
                "const data = document.getElementById('plot').data;"
                "for (const [t, tr] of data.entries()) { const i = (tr.customdata || [])"
                ".indexOf(arguments[0]); if (i >= 0) return [t, i]; } return [data.length - 1,"
                " 0];", "efficientnet_b0.IMAGENET1K_V1")
            point = d.find_elements(By.CSS_SELECTOR, "#plot .scatterlayer .trace")[trace] \
                .find_elements(By.CSS_SELECTOR, ".points path")[index]
            ActionChains(d).move_to_element(point).perform()
            wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#plot .hovertext"), "hover")
            shot("frontier")
            # what-if: four times the DRAM bandwidth and twice the on-chip memory
            drawn("/whatif?hw=img-series4-1core")
            for knob, value in (("dram_bytes_per_s", "48"), ("onchip_bytes", "2")):
                version = plot_version(d)
                field = d.find_element(By.ID, f"field-{knob}")
                field.clear()
                field.send_keys(value, Keys.TAB)
                wait_for(d, lambda d: plot_version(d) > version, knob)
            shot("whatif")
            d.set_window_size(1400, 1600)  # the roofline and both waterfalls
            drawn("/model?name=mobilenet_v3_small&hw=tpu-v1", "roofline")
            wait_for(d, lambda d: plot_version(d, "dram") >= 1, "waterfalls")
            shot("model")
            drawn("/compare")  # nvidia-t4 against the measured H100 runtime
            shot("compare")
            d.set_window_size(1400, 1050)
            d.get(url + "/studies")
            wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#studies .plot svg"),
                     "studies")
            shot("studies")
        finally:
            d.quit()


if __name__ == "__main__":
    main()
