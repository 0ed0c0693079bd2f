"""Conversations -> token ids with answer-only labels, through the tokenizer's chat template.

The language model's own template is used when its tokenizer has one (Qwen2.5's
`<|im_start|>role\\n...<|im_end|>\\n`, default system prompt included; Qwen has no BOS token). The byte
tokenizer of the tiny preset has none and gets `BYTE_CHAT_TEMPLATE`:

    Q: {question}\\nA: {answer}<eos>Q: {question}\\nA: {answer}<eos>...

A conversation is rendered turn by turn: the text a template adds for the context before an answer
(system, human turn, assistant header) gets label -100; the answer's own tokens and the end-of-turn
token the template writes right after it are the labels; whatever follows that token (Qwen's newline)
is -100 again. Every gpt turn of a multi-turn conversation counts. Each `<image>` tag becomes
`patches` placeholder tokens (labels -100), where the model writes that image's projected patches;
a record with images but no tag gets its tags at the start of the first human turn (LLaVA's place).
"""

from __future__ import annotations

from typing import Sequence

from pokevla.common.errors import ConfigError
from pokevla.pretrain.records import IMAGE_TAG

IGNORE = -100  # label of a token the loss skips (PyTorch's cross-entropy ignore_index)
ROLES = {"human": "user", "gpt": "assistant"}
BYTE_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}A: {{ m['content'] }}<eos>"
    "{% elif m['role'] == 'user' %}Q: {{ m['content'] }}\n"
    "{% else %}{{ m['content'] }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}A: {% endif %}"
)
_PROBE = "PROBE-ANSWER"  # an answer whose end shows which token the template closes a turn with


def with_chat_template(tokenizer):
    """`tokenizer` with a chat template: its own, or ours for the byte tokenizer (which has `<eos>`)."""
    if tokenizer.chat_template is None:
        tokenizer.chat_template = BYTE_CHAT_TEMPLATE
    return tokenizer


class ChatFormat:
    """Token ids and labels of conversations for one tokenizer; `patches` placeholders per image."""

    def __init__(self, tokenizer, image_id: int, patches: int):
        self.tokenizer, self.image_id, self.patches = tokenizer, image_id, patches
        probe = [{"role": "user", "content": "?"}, {"role": "assistant", "content": _PROBE}]
        after = self.render(probe)
        after = after[after.rindex(_PROBE) + len(_PROBE):]
        closing = self.tokens(after)
        if not closing:
            raise ConfigError("the tokenizer's chat template writes nothing after an answer: no end-of-turn token "
                              "to stop generation at")
        self.end_of_turn = closing[0]

    def render(self, messages: list[dict[str, str]], generation: bool = False) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)

    def tokens(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def messages(self, turns: Sequence[dict], images: int) -> list[dict[str, str]]:
        """LLaVA turns ({"from", "value"}) -> chat messages, with the image tags in place."""
        messages = [{"role": ROLES[t["from"]], "content": t["value"]} for t in turns]
        if images and not any(IMAGE_TAG in m["content"] for m in messages):
            messages[0]["content"] = "\n".join([IMAGE_TAG] * images) + "\n" + messages[0]["content"]
        return messages

    def encode(self, turns: Sequence[dict], images: int) -> tuple[list[int], list[int]]:
        """A conversation of alternating human / gpt turns -> (input ids, labels), both of length L.

        Turns after the last gpt turn have nothing to learn from and are left out."""
        messages = self.messages(turns, images)
        ids: list[int] = []
        labels: list[int] = []
        done = ""
        for k, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            prompt, full = self.render(messages[:k], generation=True), self.render(messages[:k + 1])
            answer = message["content"]
            if not prompt.startswith(done) or not full.startswith(prompt + answer):
                raise ConfigError("the tokenizer's chat template does not extend a conversation turn by turn with "
                                  "the answer written verbatim; answer-only labels cannot be placed")
            context, answer_ids = self.tokens(prompt[len(done):]), self.tokens(answer)
            closing = self.tokens(full[len(prompt) + len(answer):])
            ids += context + answer_ids + closing
            labels += [IGNORE] * len(context) + answer_ids + closing[:1] + [IGNORE] * (len(closing) - 1)
            done = full
        return self._expand_images(ids, labels)

    def prompt(self, question: str, images: int) -> list[int]:
        """The ids a model generates an answer after: the question as a human turn, then the answer header."""
        messages = self.messages([{"from": "human", "value": question}], images)
        ids, _ = self._expand_images(self.tokens(self.render(messages, generation=True)), [])
        return ids

    def _expand_images(self, ids: list[int], labels: list[int]) -> tuple[list[int], list[int]]:
        out_ids: list[int] = []
        out_labels: list[int] = []
        for i, token in enumerate(ids):
            n = self.patches if token == self.image_id else 1
            out_ids += [token] * n
            if labels:
                out_labels += [IGNORE] * n if token == self.image_id else [labels[i]]
        return out_ids, out_labels
