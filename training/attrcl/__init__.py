"""AttrCL (seed 002): video network + FACS-description text branch; the paper's 3:2
subject split x 5 runs, or LOSO. Modules: model, text (AU descriptions and their
encoder), feed (AttrCLDataset), train (train_attrcl), configs."""

from training.attrcl.configs import CONFIGS
from training.method import Method, Option

METHOD = Method(
    "attrcl",
    CONFIGS,
    dataset="training.attrcl.feed:AttrCLDataset",
    trainer="training.attrcl.train:train_attrcl",
    options=(
        Option("protocol", "subject-disjoint 3:2 split x 5 runs (the paper) or LOSO", "split", ("split", "loso")),
        Option("text_model", "local BERT/sentence-transformers folder"),
    ),
    tag_options=("protocol",),
    # the paper's classes (sec. IV-A): CASME II happiness/disgust/repression/surprise/sadness; MMEW + fear, anger
    schemes={"casme2": "casme2_attrcl", "mmew": "mmew_attrcl"},
)
