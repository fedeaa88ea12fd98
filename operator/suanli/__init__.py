"""Suanli (算力): one schedulable pool of Ascend NPUs, Hygon DCUs and NVIDIA GPUs for distributed training."""

__version__ = "0.1.0"
