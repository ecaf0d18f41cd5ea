"""GitOps engine objects (Argo CD, Flux) rendered from the same fleet model."""
