"""What a lottery ticket buys on a chip: the same network costed with its per-layer weight
densities, on presets that compress or skip zero weights and on ones that do not."""
from __future__ import annotations


def ticket_costs(cfg, rows: list[dict], specs) -> list[dict]:
    """Per winning-ticket round of the first seed, per preset: latency, DRAM, energy, and the
    same relative to the dense network."""
    from netfrontier.compress.lottery import build, load_dataset
    from netfrontier.cost.analytical import estimate
    from netfrontier.graph.torch_capture import capture_module

    train, _ = load_dataset(cfg.dataset, limit_train=1)
    side = train.x.shape[-1]
    graph = capture_module(build(cfg.model, side), (1, 1, side, side), model_name=cfg.model)
    seed = min(r["seed"] for r in rows)
    tickets = [r for r in rows if r["seed"] == seed and r["condition"] == "winning ticket"]
    out = []
    for hw in specs:
        dense = estimate(graph, hw).totals()
        for r in tickets:
            t = estimate(graph, hw, layer_density=r["layer_density"]).totals()
            out.append({"hardware": hw.name, "round": r["round"], "density": r["density"],
                        "weight_compression": hw.weight_compression,
                        "skip_zero_weights": hw.skip_zero_weights,
                        "latency_s": t["latency_s"], "dram_bytes": t["dram_bytes"],
                        "energy_j": t["energy_j"],
                        "latency_vs_dense": t["latency_s"] / dense["latency_s"],
                        "dram_vs_dense": t["dram_bytes"] / dense["dram_bytes"],
                        "energy_vs_dense": t["energy_j"] / dense["energy_j"]})
    return out
