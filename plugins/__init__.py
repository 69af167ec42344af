"""ikrl's first-party plugins: robots, rewards, samplers and observation transforms.

Each module is registered through an entry point in the ``ikrl`` group (see pyproject.toml),
exactly as a third-party plugin is.
"""
