"""Backbones (one file each, one contract: item vectors [B, L, d] + real-item mask → states [B, L, d]),
item encoders, and the scorer that combines them into experts."""

from core.config import BackboneConfig
from core.models.bert4rec import BERT4Rec
from core.models.gru4rec import GRU4Rec
from core.models.sasrec import SASRec

BACKBONES = {"sasrec": SASRec, "gru4rec": GRU4Rec, "bert4rec": BERT4Rec}


def build_backbone(cfg: BackboneConfig):
    return BACKBONES[cfg.kind](cfg)
