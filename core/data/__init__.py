"""Datasets: sources → sequences → leave-one-out split → frequency bins (DESIGN §3)."""

from core.data.prepare import SeqData, frequency_bins, load_data, training_frequency

__all__ = ["SeqData", "frequency_bins", "load_data", "training_frequency"]
