"""DVSCL (seed 000): self-supervised dual-view pretraining on the labelled + AU-selected
pairs, then a linear probe on the frozen encoder under LOSO. Modules: model (encoder),
losses (dual-view InfoNCE), feed (DVSCLDataset), train (train_dvscl), configs."""

from training.dvscl.configs import CONFIGS
from training.method import Method, Option

METHOD = Method(
    "dvscl",
    CONFIGS,
    dataset="training.dvscl.feed:DVSCLDataset",
    trainer="training.dvscl.train:train_dvscl",
    options=(
        Option("view", "the second view beside RGB", "depth", ("depth", "gray")),
        Option("weights", "local ImageNet ResNet18 state_dict (optional)"),
    ),
    tag_options=("view",),
    # the paper's CAS(ME)^3 task: negative / positive / surprise / others (sec. 5.4.4, table 6)
    schemes={"casme3_part_a": "casme3_4"},
)
