"""FDP (seed 003): local-global feature-aware transformer trained from scratch per LOSO
fold. Modules: model, feed (FDPDataset), train (train_fdp), configs."""

from training.fdp.configs import CONFIGS
from training.method import Method

METHOD = Method("fdp", CONFIGS, dataset="training.fdp.feed:FDPDataset", trainer="training.fdp.train:train_fdp")
