"""Stage-2 training (post-training on robot demonstrations): data, loop, checkpoints."""
