"""Display names of the model options (config option -> the name a report prints).

For print only (``bench.report.names``): no config, hash or unit key reads this table, so renaming one
reruns nothing. An option missing here is printed as itself.
"""

NAMES = {
    "ststnet": "STSTNet",
    "fmanet": "FMANet",
    "off_apexnet": "OFF-ApexNet",
    "timm_resnet10t": "ResNet-10-T",
    "timm_resnet10t_half": "ResNet-10-T (½)",
    "timm_resnet18": "ResNet-18",
}
