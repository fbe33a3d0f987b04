"""SelfME (seed 001): self-supervised motion learning, then SCViT under LOSO. Modules:
model (SCViT, B-spline expansion), motion_learner, feed (SelfMEDataset), train
(train_selfme), configs."""

from training.method import Method, Option
from training.selfme.configs import CONFIGS

METHOD = Method(
    "selfme",
    CONFIGS,
    dataset="training.selfme.feed:SelfMEDataset",
    trainer="training.selfme.train:train_selfme",
    options=(
        Option("weights", "local timm ViT-S/16 weights (optional)"),
        Option("vgg_weights", "local torchvision VGG-19 state_dict for the perceptual loss (optional)"),
        Option(
            "motion_weights",
            "local state_dict of a pretrained motion learner (e.g. a run's motion_learner.pt), fine-tuned "
            "at the paper's 2e-6 (optional; without it the learner trains from scratch at 2e-4)",
        ),
        Option("motion", "the learned motion (default) or the TV-L1 baseline", "learned", ("learned", "tvl1")),
    ),
    tag_options=("motion",),
)
