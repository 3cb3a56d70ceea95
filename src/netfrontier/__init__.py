"""netfrontier: which network to ship on your accelerator, and how to shrink it.

The pipeline: model source --capture--> OpGraph --CostModel.estimate(graph, HardwareSpec)-->
CostTable --> store --> frontier --> report. Each step is one call from Python.
"""
__version__ = "0.1.0"
