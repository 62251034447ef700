"""The Train page's fine-tuning job: its options in words (presets, units, sensible choices) and
an estimate of the run's length. Drawn by app/views/train.py when the job kind is 'finetune';
reaches core only through app.handlers."""

from __future__ import annotations

import dataclasses
from typing import Any

import streamlit as st

from app import handlers, state, words

CHOICES = handlers.train_choices()  # device, precision, save dtype: (value, words)
FIELDS, OPTION_HELP = handlers.finetune_fields()  # the fine-tuning options that have defaults, in order
MAIN_OPTIONS = ("epochs", "lr", "batch_size", "precision")  # shown in the first row; the rest fold away
BATCH_CHOICES = (0, 8, 16, 32, 64, 128, 256)
FRAME_CHOICES = (None, 64, 128, 256, 512, 1024, 2048, 4096)  # training frames: all, or a random subset
QUICK_FRAMES = 256
WISE_CHOICES = tuple(i / 20 for i in range(21))  # blends in steps of 0.05
# Option names in words, with their units; a field not listed reads as its name in words.
LABELS = {
    "epochs": "Epochs", "lr": "Learning rate", "weight_decay": "Weight decay", "batch_size": "Batch size",
    "warmup_fraction": "Warm-up (% of steps)", "precision": "Precision", "seed": "Random seed",
    "paraphrase": "Reword captions each epoch", "freeze_text": "Freeze the text tower",
    "freeze_blocks": "Frozen blocks (first N of each tower)", "unfreeze_text_at": "Unfreeze text tower at epoch",
    "unfreeze_vision_at": "Unfreeze vision tower at epoch", "lora_rank": "LoRA rank (0: train all weights)",
    "lora_alpha": "LoRA scale (alpha)", "lora_dropout": "LoRA dropout", "lora_targets": "LoRA modules",
    "wise_ft": "Blend with the start weights (WiSE-FT)", "wise_alphas": "WiSE-FT blends to try",
    "val_k": "Neighbours in the validation vote", "validate": "Validate after each epoch", "device": "Device",
    "workers": "Frame-decoding workers", "save_dtype": "Saved weights",
}
# Help that names raw values in the engine's text, said here in the page's words.
HELP = {
    "batch_size": ("Automatic: the largest power of two (up to 128 images on a CPU, 256 on a GPU) whose "
                   "activations fit the free memory and that leaves at least 4 steps per epoch."),
    "precision": ("Automatic uses bf16 only where the chip computes it natively (AVX512-BF16/AMX CPUs, "
                  "most GPUs); emulated bf16 runs several times slower than fp32."),
    "save_dtype": "The number format of the saved model's weights.",
    "unfreeze_text_at": "Empty: off. " + OPTION_HELP.get("unfreeze_text_at", ""),
    "unfreeze_vision_at": "Empty: off. " + OPTION_HELP.get("unfreeze_vision_at", ""),
}
# A smaller run: a random subset of the train split, one epoch, no per-epoch validation (the
# before/after comparison still scores it on the full dataset), no maps. "Recipe" restores the defaults.
DEFAULTS = {f.name: f.default for f in FIELDS}
PRESETS = {
    "recipe": ("Full recipe", {"epochs": DEFAULTS.get("epochs", 8), "validate": DEFAULTS.get("validate", True)},
               True, None),
    "quick": (f"Quick run: {QUICK_FRAMES} frames, 1 epoch, no per-epoch validation, no maps",
              {"epochs": 1, "validate": False}, False, QUICK_FRAMES),
}


def _label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


def _choice(col: Any, name: str, default: str, key: str, tip: str | None) -> str:
    words = dict(CHOICES[name])
    values = list(words) if default in words else [default, *words]
    return col.selectbox(_label(name), values, index=values.index(default), key=key, help=tip,
                         format_func=lambda v: words.get(v, v))


def _initial(key: str, default: Any) -> dict[str, Any]:
    """The widget's first value; afterwards its state rules (a run-size choice may have set it, and
    passing a value as well would draw Streamlit's 'set twice' warning)."""
    return {} if key in st.session_state else {"value": default}


def _option_input(f: dataclasses.Field, col: Any) -> Any:
    """One widget per FinetuneOptions field, its default prefilled, labelled in words."""
    default, key, label, name = f.default, f"train_opt_{f.name}", _label(f.name), f.name
    tip = HELP.get(name) or OPTION_HELP.get(name)
    if name == "lr":
        return _lr_input(col, label, key, tip)
    if name in CHOICES:
        return _choice(col, name, str(default), key, tip)
    if name == "batch_size":
        return int(col.selectbox(label, BATCH_CHOICES, key=key, help=tip, index=BATCH_CHOICES.index(default)
                                 if default in BATCH_CHOICES else 0,
                                 format_func=lambda n: "Automatic (fits memory)" if n == 0 else f"{n} images per step"))
    if name == "warmup_fraction":
        v = col.number_input(label, value=round(float(default) * 100, 6), min_value=0.0, max_value=100.0, step=1.0,
                             format="%g", key=key, help=tip)
        return round(float(v) / 100, 6)
    if name == "lora_targets":
        return tuple(col.multiselect(label, list(default), default=list(default), key=key, help=tip))
    if name == "wise_alphas":
        options = sorted(set(WISE_CHOICES) | set(default))
        return tuple(col.multiselect(label, options, default=list(default), key=key, help=tip,
                                     format_func=lambda a: f"{a:g}"))
    if isinstance(default, bool):
        return col.checkbox(label, key=key, help=tip, **_initial(key, default))
    if isinstance(default, int):
        return int(col.number_input(label, step=1, key=key, help=tip, **_initial(key, default)))
    if isinstance(default, float):
        return float(col.number_input(label, value=default, format="%g", key=key, help=tip))
    if default is None:
        v = col.number_input(label, value=None, step=1, min_value=1, key=key, placeholder="off", help=tip)
        return None if v is None else int(v)
    if isinstance(default, tuple):
        text = col.text_input(label, value=", ".join(map(str, default)), key=key, help=tip)
        return tuple(t.strip() for t in text.split(",") if t.strip())
    return col.text_input(label, value=str(default), key=key, help=tip)


def _lr_input(col: Any, label: str, key: str, tip: str | None) -> float | None:
    """The learning rate, empty by default: the base model's own default applies, shown with its source."""
    base = st.session_state.get("train_base") or state.engine().model.name
    try:
        value, source = handlers.finetune_defaults(base)["lr"]
        shown, why = f"default {value:g}", f"Left empty: {base}'s default {value:g}, {source}."
    except ValueError as e:  # a base name typed in that the registry does not know
        shown, why = "the base model's default", str(e)
    v = col.number_input(label, value=None, format="%g", key=key, placeholder=shown, help=f"{tip}\n\n{why}")
    return None if v is None else float(v)


def _apply_preset() -> None:
    """The run-size choice sets the options it stands for (the user may still change them)."""
    _, values, maps, frames = PRESETS[st.session_state["train_preset"]]
    for name, v in values.items():
        st.session_state[f"train_opt_{name}"] = v
    st.session_state["train_maps"] = maps
    st.session_state["train_frames"] = frames


def _estimate(data: str, n_train: int | None, jobs: list[dict[str, Any]]) -> None:
    """Measured speed, what limits it, and what each run size would take on this dataset."""
    rate = handlers.measured_throughput(jobs)
    if rate is None:
        st.caption("Speed: not measured yet; the first job shows its training images per second.")
        return
    newest = next(j for j in jobs if j.get("images_per_s") or (j.get("result") or {}).get("images_per_s"))
    said = f"Measured {rate:.1f} training images/s ({handlers.job_limits(newest)})."
    if n_train:
        epoch_s = n_train / rate
        full, quick = PRESETS["recipe"][1]["epochs"], PRESETS["quick"][1]["epochs"]
        quick_s = quick * min(n_train, QUICK_FRAMES) / rate
        said += (f" This dataset's {words.count(n_train, 'training frame')}: about {words.duration(epoch_s)} "
                 f"per epoch; the full recipe ({words.count(full, 'epoch')}) ≈ {words.duration(full * epoch_s)}, "
                 f"a quick run ≈ {words.duration(quick_s)} (training alone).")
    st.caption(said)


def finetune_form(eng: Any, jobs: list[dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    fields = {f.name: f for f in FIELDS}
    datasets = handlers.list_datasets([eng.store.data_root])
    c1, c2 = st.columns([3, 2])
    data = c1.selectbox("Dataset", [str(d) for d in datasets], key="train_data", accept_new_options=True,
                        help="A folder with a manifest; listed: the current index's dataset and workspace/*")
    models = handlers.list_models([eng.model.name])
    base = c2.selectbox("Starting model", models, key="train_base", accept_new_options=True,
                        help="A registry name: scenescope-tiny, file:<folder>, openclip:<arch>/<tag>")
    st.radio("Run size", list(PRESETS), key="train_preset", horizontal=True, on_change=_apply_preset,
             format_func=lambda p: PRESETS[p][0],
             help="A quick run shows within minutes whether fine-tuning helps on this dataset.")
    n_train = handlers.train_frame_count(data) if data else None
    _estimate(data, n_train, jobs)
    with st.form("train_form", border=True):
        main = [n for n in MAIN_OPTIONS if n in fields]
        cols = st.columns(len(main) + 2)
        options = {n: _option_input(fields[n], col) for n, col in zip(main, cols, strict=False)}
        every = "All" if n_train is None else f"All {n_train:,}"
        frames = cols[-2].selectbox(
            "Training frames", FRAME_CHOICES, key="train_frames",
            format_func=lambda n: every if n is None else f"{n:,} (random subset)",
            help="Train on a random subset of the train split for a quicker run (the comparison still "
                 "scores the whole split).", **({} if "train_frames" in st.session_state else {"index": 0}))
        split = cols[-1].selectbox("Compare on", ["test", "val"], key="train_split",
                                   format_func=lambda s: f"{s} split",
                                   help="The split scored before and after (val when the dataset has no test frames)")
        with st.expander("All options (defaults shown)"):
            grid = st.columns(3)
            for i, f in enumerate(f for f in FIELDS if f.name not in main):
                options[f.name] = _option_input(f, grid[i % 3])
            o1, o2 = st.columns(2)
            compare = o1.checkbox("Compare before/after when done", value=True, key="train_compare")
            maps = o2.checkbox("Before/after maps", key="train_maps", **_initial("train_maps", True))
        started = st.form_submit_button("Start fine-tuning", type="primary", icon=":material/play_arrow:")
    spec = {"data_dir": data, "base_model": base, "options": options, "eval_split": split, "k": int(eng.k),
            "compare": compare, "maps": maps, "train_frames": frames}
    return spec, started
