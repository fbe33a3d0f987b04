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
    options=(
        Option("weights", "local open_clip ViT-B-32 state_dict or Hugging Face CLIP folder (optional)"),
        Option(
            "aus", "AU set: casme2, samm, default or numbers such as 2,4,7,12 (default: the paper's for the dataset)"
        ),
        Option("alpha", "weight of L_MiAUC in eq. 12 (default: the paper's for the dataset)"),
        Option("beta", "weight of L_GD in eq. 12 (default: the paper's for the dataset)"),
    ),
    # the AU set and alpha/beta the paper uses on each dataset: training/microauclip/settings.py
    takes_adapter=True,
)
