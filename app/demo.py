"""SceneScope demo (Gradio): one page for demo sessions, and a small named API.

Started with ``scenescope demo-ui`` (``launch(host, port)``). Endpoints (see README):
``/classify`` (file, k) -> result dict, ``/search`` (text, k) -> ranked scenes, and ``/heatmap``
(file, query, keep_ratio) -> heatmap image + pruned-vote summary when the token engine is present,
and ``/ask`` (file, question, options, answerer, keep_ratio, k) -> answer dict + the question's kept-token heatmap.
"""

from __future__ import annotations

import os

# Before gradio is imported: it reads this once, and must never phone home in a demo session.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import functools  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from app import figures, handlers  # noqa: E402
from app.demo_queue import QueueFullAnswer, timed  # noqa: E402

if TYPE_CHECKING:
    from core.types import IndexStore, SceneModel

QUEUE_MAX = 16  # waiting requests beyond this are refused at once instead of piling up
CONCURRENCY = 1  # one model on a few CPU cores: parallel requests would only slow each other
THUMB_WIDTH = 320
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]


_INDEX: dict[str, str | None] = {"dir": None}  # set by build(); None: the default index
TIME_KEYS = ("t", "start_s", "end_s", "timestamp_s")  # seconds in the API's answers, rounded to 1 ms
# Neighbour captions wrap onto a second line instead of being cut off at the thumbnail's width.
CSS = (".ss-neighbours .caption-label, .ss-neighbours .caption { white-space: pre-line !important; "
       "text-overflow: clip !important; max-width: 100% !important; }")


def index_dir() -> Path:
    return Path(_INDEX["dir"]) if _INDEX["dir"] else handlers.default_index()


def engine() -> tuple[SceneModel, IndexStore]:
    """(model, store) of the served index (``$SCENESCOPE_INDEX`` or the embedded demo), loaded once."""
    return _open(str(index_dir()))


@functools.lru_cache(maxsize=2)
def _open(path: str) -> tuple[SceneModel, IndexStore]:
    return handlers.open_engine(path, progress=True)


tokens_available = handlers.tokens_available


def _path_of(file: Any) -> Path:
    """Gradio hands a file as a path string (UI, client) or a FileData-like dict (raw API)."""
    if file is None:
        raise gr.Error("Upload an image or a clip first.")
    if isinstance(file, dict):
        file = file.get("path") or file.get("name")
    path = Path(str(getattr(file, "name", file)))
    # The upload keeps its own name (Gradio stores it as <cache>/<hash>/<name>), so the refusal of a
    # wrong type or size names the file. The File component gets no file_types: Gradio's own check
    # would refuse first without naming it, and a gr.File subclass would make Gradio write a .pyi
    # stub beside this module at import.
    problem = handlers.check_upload(path.name, path.stat().st_size if path.is_file() else 1)
    if problem:
        raise gr.Error(problem)
    return path


def _thumb(store: IndexStore, rel: str | None) -> np.ndarray | None:
    return handlers.thumbnail(handlers.frame_file(store, rel=rel), THUMB_WIDTH)


def _api_safe(obj: Any) -> Any:
    """Rename ``path`` keys to ``scene_path``: gradio_client takes any dict with a ``path`` string
    for a file to download, and a scene's dataset-relative path is not one."""
    if isinstance(obj, dict):  # times lose their float noise too: 1.48, not 1.4800000000000004
        return {("scene_path" if k == "path" else k):
                round(v, 3) if k in TIME_KEYS and isinstance(v, float) else _api_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_api_safe(v) for v in obj]
    return obj


# ---- API functions (each is also what the page calls) -----------------------------------------
def classify(file: Any, k: int = 5, vote_space: str = "embedding",
             progress: gr.Progress = gr.Progress()) -> dict[str, Any]:
    """Vote the attributes of an image or clip from its k nearest indexed scenes.

    ``vote_space``: "embedding" (the k nearest scenes vote on every attribute) or "prompts" (each
    attribute votes among its own k nearest scenes in its value prompts' space; its ``voters``
    then name them). Returns the engine's result dict (``kind`` image|clip; per frame ``labels``,
    ``attributes`` with share/abstained/voters, ``neighbors`` with ``scene_path`` relative to the
    dataset; for a clip ``frames`` and ``segments``) plus ``display``: the attribute and value
    labels for people.
    """
    progress(0.05, desc="Loading model and index")
    model, store = engine()
    path = _path_of(file)
    progress(0.2, desc="Sampling and voting")
    try:  # a bad vote space, an unusable file: one line naming what is wrong
        out = handlers.classify_file(path, model, store, k=int(k), space=vote_space)
    except ValueError as e:
        raise gr.Error(str(e)) from None
    progress(1.0, desc="Done")
    return _api_safe(out)


def search(text: str, k: int = 12) -> list[dict[str, Any]]:
    """Indexed scenes ranked by similarity to a text description, best first."""
    model, store = engine()
    try:
        hits = handlers.search_scenes(model, store, text or "", k=int(k))
    except ValueError as e:
        raise gr.Error(str(e)) from None
    return _api_safe(hits.to_dict("records"))


def heatmap(file: Any, query: str = "", keep_ratio: float = 0.25) -> tuple[Image.Image, dict[str, Any]]:
    """Query-aware patch relevance over an image (a clip's first frame) and the vote from the kept
    tokens only, beside the full vote. Needs the token engine (core.tokens)."""
    if not tokens_available():
        raise gr.Error("The token engine (core.tokens) is not installed in this build.")
    model, store = engine()
    path = _path_of(file)
    try:
        image = handlers.first_frame(path)
    except ValueError as e:  # the engine's InputError / VideoError name the file
        raise gr.Error(str(e)) from None
    query = (query or "").strip() or None
    result = handlers.token_votes(model, store, image, k=5, keep_ratio=float(keep_ratio), query=query)
    summary = {**handlers.pruned_summary(result, query), "display": handlers.display_names(store.schema)}
    return handlers.token_heatmap(image, result.selection, query), summary


def _heat_table(summary: dict[str, Any] | None) -> pd.DataFrame | None:
    if not summary:
        return None
    _, store = engine()
    return handlers.pruned_vote_table(summary, store.schema)


def ask(file: Any, question: str = "", options: str = "", answerer: str = "retrieval", keep_ratio: float = 0.25,
        k: int = 5) -> tuple[dict[str, Any], Image.Image | None]:
    """Answer a question about an image or clip (issue 19's Ask): free text, or multiple choice with
    ``options`` one per line. ``answerer``: "retrieval" (the k-NN vote) or "vlm" (the bundled small
    VLM, when installed). Returns the answer dict (``answer``, ``confidence``, ``definite``,
    ``reason``, ``choice``/``letter``, ``evidence`` with ``role`` supports|contradicts|split, for a
    clip ``timeline`` and ``window`` in seconds, ``familiarity``) and the question's kept-token heatmap."""
    model, store = engine()
    problem = handlers.question_problem(question or "", store.schema)
    if problem:  # before the (slow) votes
        raise gr.Error(problem)
    path = _path_of(file)
    try:
        analysis = handlers.analyze_file(path, model, store, k=int(k))
    except (OSError, ValueError) as e:  # the engine's InputError / VideoError name the file
        raise gr.Error(str(e) if path.name in str(e) else f"{path.name}: cannot be read ({e})") from None
    opts = [o.strip() for o in (options or "").splitlines() if o.strip()] or None
    result, error = handlers.ask(analysis, question, model, store, options=opts, answerer=answerer,
                                 keep_ratio=float(keep_ratio))
    if error:
        raise gr.Error(error)
    return _api_safe(result.to_dict()), result.heatmap


def _ask_view(result: dict[str, Any] | None) -> tuple[str, str, list[tuple[np.ndarray, str]], Any]:
    """(answer line, confidence, evidence gallery, answer-over-time figure) of an /ask answer."""
    if not result:
        return "", "", [], None
    _, store = engine()
    letter = f"{result['letter']}. " if result.get("letter") else ""
    line = f"{letter}{result['answer']}" + (f" ({result['reason']})" if result.get("reason") else "")
    cards = []
    for c in result["evidence"]:
        img = _thumb(store, c.get("scene_path"))
        if img is not None:
            cards.append((img, f"{c['role']} · sim {c['similarity']:.3f}"))
    timeline = None
    if result.get("timeline"):
        spans = [SimpleNamespace(text=s["answer"], start_s=s["start_s"], end_s=s["end_s"],
                                 confidence=s["confidence"]) for s in result["timeline"]]
        timeline = figures.answer_timeline_figure(spans, spans[-1].end_s, store.schema.qa.yes,
                                                  store.schema.qa.no_answer)
    return line, f"{result['confidence']:.0%}", cards, timeline


# ---- page rendering from the API's answers ---------------------------------------------------------
def _vote_rows(frame: dict[str, Any]) -> pd.DataFrame:
    _, store = engine()
    table = handlers.vote_frame(frame, store.schema)
    return table.assign(Share=[f"{s:.0%}" for s in table["Share"]])


def _gallery(frame: dict[str, Any]) -> list[tuple[np.ndarray, str]]:
    _, store = engine()
    out = []
    for card in handlers.neighbour_cards(frame):
        img = _thumb(store, card.path)
        note = f"\ndisagrees: {', '.join(store.schema[a].display for a in card.against)}" if card.against else ""
        if img is not None:
            out.append((img, f"{card.title}{note}"))
    return out


def _frames(result: dict[str, Any]) -> list[dict[str, Any]]:
    return result["frames"] if result.get("kind") == "clip" else [result]


def render(result: dict[str, Any] | None, frame_i: int = 0) -> tuple[Any, Any, Any, Any]:
    """(vote table, neighbour gallery, timeline figure, frame slider update) for one frame."""
    if not result:
        return None, [], None, gr.update(visible=False)
    _, store = engine()
    frames = _frames(result)
    i = int(min(max(frame_i, 0), len(frames) - 1))
    frame = frames[i]
    timeline = None
    slider = gr.update(visible=False)
    if result.get("kind") == "clip":
        times = [f["t"] for f in frames]
        duration = handlers.clip_duration(times, lone_step=1 / handlers.CLIP_FPS)
        segs = [SimpleNamespace(**s) for s in result["segments"]]
        timeline = figures.timeline_figure(segs, store.schema, duration, cursor_s=times[i])
        slider = gr.update(visible=True, maximum=len(frames) - 1, value=i,
                           label=f"Frame ({times[i]:.1f} s of {duration:.1f} s)")
    return _vote_rows(frame), _gallery(frame), timeline, slider


def build(index: str | Path | None = None) -> gr.Blocks:
    """The demo page; ``index`` overrides the default index (tests, other datasets)."""
    _INDEX["dir"] = str(index) if index else None
    with gr.Blocks(title="SceneScope demo", analytics_enabled=False) as demo:
        gr.Markdown("## SceneScope\nUpload a dashcam image or clip: its nearest indexed scenes vote on "
                    "every attribute.")
        result_state = gr.State(None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                upload = gr.File(label="Image or clip (" + ", ".join(handlers.ACCEPTED_SUFFIXES) + ")",
                                 type="filepath")
                k = gr.Slider(1, 25, value=5, step=1, precision=0, label="Neighbours (k)")
                space = gr.Radio([(label, name) for name, label in handlers.VOTE_SPACE_LABELS.items()],
                                 value="embedding", label="Voters found by")
                go_btn = gr.Button("Analyse", variant="primary")
                examples = _example_files()
                if examples:
                    gr.Examples(examples, inputs=[upload], label="Demo files")
            with gr.Column(scale=3):
                table = gr.Dataframe(label="Attributes", interactive=False, wrap=True)
                frame = gr.Slider(0, 1, value=0, step=1, precision=0, label="Frame", visible=False)
                timeline = gr.Plot(label="Timeline")
        gallery = gr.Gallery(label="Neighbours (most similar first)", columns=5, rows=1, height=270,
                             object_fit="contain", allow_preview=True, elem_classes=["ss-neighbours"])
        with gr.Accordion("Raw result (API /classify)", open=False):
            raw = gr.JSON(label="Result", show_label=False)

        go_btn.click(timed(classify), [upload, k, space], [raw], api_name="classify", concurrency_limit=CONCURRENCY) \
            .then(lambda r: r, [raw], [result_state], api_visibility="private") \
            .then(render, [result_state], [table, gallery, timeline, frame], api_visibility="private")
        frame.release(render, [result_state, frame], [table, gallery, timeline, frame], api_visibility="private")

        with gr.Accordion("Search by text", open=False):
            with gr.Row():
                text = gr.Textbox(label="Describe the scene", scale=4,
                                  placeholder="snowy night, approaching a 5-way intersection")
                n = gr.Slider(4, 48, value=12, step=4, precision=0, label="Results", scale=1)
            hits_json = gr.JSON(label="Matching scenes", visible=False)
            hits = gr.Gallery(label="Matching scenes", columns=6, height="auto")
            text.submit(timed(search), [text, n], [hits_json], api_name="search", concurrency_limit=CONCURRENCY) \
                .then(_hit_gallery, [hits_json], [hits], api_visibility="private")

        with gr.Accordion("Token heatmap", open=False, visible=tokens_available()):
            with gr.Row():
                query = gr.Textbox(label="Query (empty: query-free saliency)", scale=3)
                keep = gr.Slider(0.05, 1.0, value=0.25, step=0.05, label="Keep ratio", scale=2)
                heat_btn = gr.Button("Show heatmap", scale=1)
            with gr.Row():
                heat_img = gr.Image(label="Patch relevance (kept patches outlined)", type="pil")
                heat_table = gr.Dataframe(label="Votes: full image vs kept tokens only", interactive=False, wrap=True)
            with gr.Accordion("Raw result (API /heatmap)", open=False):
                heat_json = gr.JSON(label="Kept tokens and votes", show_label=False)
            heat_btn.click(timed(heatmap), [upload, query, keep], [heat_img, heat_json], api_name="heatmap",
                           concurrency_limit=CONCURRENCY) \
                .then(_heat_table, [heat_json], [heat_table], api_visibility="private")
        with gr.Accordion("Ask a question", open=False):
            vlm_ok, vlm_note = handlers.vlm_status()
            with gr.Row():
                question = gr.Textbox(label="Question about the uploaded image or clip", scale=3,
                                      placeholder="Is the road surface wet?")
                ask_btn = gr.Button("Ask", scale=1)
            with gr.Row():
                options = gr.Textbox(label="Options (one per line; empty: free answer)", lines=3, scale=3)
                answerer = gr.Radio([(label + ("" if vlm_ok or name == "retrieval" else " (not installed)"), name)
                                     for name, label in handlers.ANSWERER_LABELS.items()],
                                    value="retrieval", label="Answerer", info=None if vlm_ok else vlm_note, scale=2)
                ask_keep = gr.Slider(0.05, 1.0, value=0.25, step=0.05, label="Keep ratio", scale=1)
            with gr.Row():
                ask_text = gr.Textbox(label="Answer", interactive=False, scale=3)
                ask_conf = gr.Textbox(label="Confidence", interactive=False, scale=1)
            with gr.Row():
                ask_heat = gr.Image(label="The question's kept tokens", type="pil")
                ask_plot = gr.Plot(label="Answer over time (clips)")
            ask_cards = gr.Gallery(label="Evidence: neighbours that support or contradict the answer", columns=5,
                                   rows=1, height=270, object_fit="contain")
            with gr.Accordion("Raw result (API /ask)", open=False):
                ask_json = gr.JSON(label="Answer", show_label=False)
            ask_btn.click(timed(ask), [upload, question, options, answerer, ask_keep, k], [ask_json, ask_heat],
                          api_name="ask", concurrency_limit=CONCURRENCY) \
                .then(_ask_view, [ask_json], [ask_text, ask_conf, ask_cards, ask_plot], api_visibility="private")
    return demo


def _hit_gallery(hits: list[dict[str, Any]] | None) -> list[tuple[np.ndarray, str]]:
    if not hits:
        return []
    _, store = engine()
    out = []
    for h in hits:
        img = _thumb(store, h.get("scene_path"))
        if img is not None:
            out.append((img, f"sim {h['similarity']:.3f} · {h.get('clip_id', '')}"))
    return out


def _example_files() -> list[list[str]]:
    """A demo clip and images from the served dataset, when they exist (for one-click trials)."""
    try:
        _, store = engine()
    except Exception:  # no index yet: the page still works without examples
        return []
    return [[str(p)] for p in handlers.example_files(store, index_dir())]


def theme() -> gr.themes.Base:
    """Default look with system fonts: the stock theme would fetch web fonts from a CDN."""
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)


def launch(host: str = "127.0.0.1", port: int = 7860, index: str | Path | None = None,
           block: bool = True) -> gr.Blocks:
    """Serve the demo on ``host:port`` with a bounded queue (``block=False`` returns at once).

    A call that finds the queue full gets app.demo_queue's answer: the limit, Retry-After, and the
    seconds to wait, instead of Gradio's fixed text."""
    from fastapi.middleware import Middleware

    demo = build(index)
    demo.queue(max_size=QUEUE_MAX, default_concurrency_limit=CONCURRENCY)
    # Gradio serves whatever allowed_paths hold, so name the example files one by one: allowing the
    # dataset folder served every file under it (manifest included). Thumbnails and galleries need
    # nothing here: they are arrays, which Gradio writes to its own cache.
    allowed = [row[0] for row in _example_files()]
    demo.launch(server_name=host, server_port=int(port), share=False, show_error=True, quiet=True,
                prevent_thread_lock=not block, theme=theme(), css=CSS, footer_links=["api"], allowed_paths=allowed,
                max_file_size=f"{handlers.MAX_UPLOAD_MB}mb", enable_monitoring=False, ssr_mode=False,
                pwa=False, mcp_server=False,
                app_kwargs={"middleware": [Middleware(QueueFullAnswer, limit=QUEUE_MAX, workers=CONCURRENCY)]})
    return demo
