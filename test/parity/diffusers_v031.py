"""
diffusers 0.30.3 (the last release whose pipelines import on Debian's torch 1.13) with the one scheduler change
of v0.31 that Maskflow follows: KDPM2AncestralDiscreteScheduler (Maskflow's "DPM2 a Karras") drew noise in its
first-order step too and threw it away; since v0.31 (huggingface/diffusers PR 9616) it draws only in the
second-order step, where the noise is used. Import this module before running a pipeline or scheduler: the
unused draw is skipped without touching the generator, which gives v0.31's noise stream from 0.30.3's arithmetic.
"""
import functools

import torch
import diffusers.schedulers.scheduling_k_dpm_2_ancestral_discrete as kdpm2_ancestral_module
from diffusers import KDPM2AncestralDiscreteScheduler

_randn_tensor = kdpm2_ancestral_module.randn_tensor
_step = KDPM2AncestralDiscreteScheduler.step
_stepping = []


@functools.wraps(_step)  # keeps step's signature: callers look for its "generator" parameter
def _step_v031(self, *args, **kwargs):
    _stepping.append(self)
    try:
        return _step(self, *args, **kwargs)
    finally:
        _stepping.pop()


def _randn_tensor_v031(shape, **kwargs):
    if _stepping and _stepping[-1].state_in_first_order:
        return torch.zeros(shape, dtype=kwargs.get("dtype"), device=kwargs.get("device"))
    return _randn_tensor(shape, **kwargs)


KDPM2AncestralDiscreteScheduler.step = _step_v031
kdpm2_ancestral_module.randn_tensor = _randn_tensor_v031
