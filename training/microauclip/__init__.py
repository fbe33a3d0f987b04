"""MicroAUCLIP (seed 004): micro-AU detection and emotion-label-free 3-class recognition
with CLIP under LOSO. Modules: model, feed (MicroAUCLIPDataset), train
(train_microauclip), configs."""

from training.method import Method, Option
from training.microauclip.configs import CONFIGS

METHOD = Method(
    "microauclip",
    CONFIGS,
    dataset="training.microauclip.feed:MicroAUCLIPDataset",
    trainer="training.microauclip.train:train_microauclip",
    options=(Option("weights", "local open_clip ViT-B-32 state_dict (optional)"),),
)
