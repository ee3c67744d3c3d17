"""The statistical model: design arrays, the latent process, the measurement families, variable roles, simulation."""
