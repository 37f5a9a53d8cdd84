"""Domain package of the imagepipeline gateway, shipped to every function as the common layer."""
