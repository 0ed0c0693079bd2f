"""Stage 1: PokeVLM world-knowledge pre-training.

records   the dataset format (LLaVA conversations plus the labels that score them)
vlm       PokeVLM, the stage-1 model (PokeVLA's encoders, projector and language model); its checkpoints
chat      conversations -> token ids with answer-only labels, through the tokenizer's chat template
data      tokenised conversation samples, padding collate, the length-grouped resumable sampler
config    the typed `pokevla pretrain` configuration
loop      stage-1 training on the loop stage 2 shares (`pokevla.train.runner`)
transfer  stage 1 -> stage 2: a new PokeVLA from a PokeVLM checkpoint (`pokevla train --init`)
commands  `pokevla pretrain`, `pokevla vlm init | ask | eval`
"""
