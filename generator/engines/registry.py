"""Every GitOps engine k10fleet renders for, by ``gitops.engine`` value, in one dict."""

from __future__ import annotations

from generator.engines.argocd import ArgoCD
from generator.engines.base import Engine, NoEngine
from generator.engines.flux import Flux
from generator.fleet.model import Fleet

ENGINES: dict[str, Engine] = {"argocd": ArgoCD(), "flux": Flux(), "none": NoEngine()}


def engine_of(fleet: Fleet) -> Engine:
    return ENGINES[fleet.gitops.engine]
