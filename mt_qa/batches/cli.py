"""``mtqa build-batches``: the command-line face of the build-batches stage."""

from __future__ import annotations

import click

from mt_qa.batches.negatives import BM25NegativeMiner, SentenceNegatives
from mt_qa.batches.positives import MISSING_SENTENCE, POSITIVES, PositiveFormat
from mt_qa.batches.stage import BatchesConfig, BuildBatchesStage
from mt_qa.clickutil import LANG_CODES, config_from_options, print_summary, stage_options, stage_run
from mt_qa.errors import MtqaError


def parse_weights(values: tuple[str, ...], option: str) -> dict[str, float]:
    """``en=2,es=1`` (or the option repeated) -> {"en": 2.0, "es": 1.0}."""
    weights: dict[str, float] = {}
    for value in values:
        for item in filter(None, (part.strip() for part in value.split(","))):
            key, sep, number = item.partition("=")
            try:
                if not sep or not key:
                    raise ValueError
                weights[key.strip()] = float(number)
            except ValueError:
                raise MtqaError(f"{option} {item!r}: expected NAME=WEIGHT, e.g. {option} en=2,es=1") from None
    return weights


def parse_ranks(value: str) -> tuple[int, int]:
    low, sep, high = value.partition("-")
    try:
        return int(low), int(high if sep else low)
    except ValueError:
        raise MtqaError(f"--negative-ranks {value!r}: expected MIN-MAX, e.g. 10-30") from None


@click.command("build-batches")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output batch shard directory.")
@click.option("--langs", type=LANG_CODES, help="Use only these languages (any code form); default: all in the inputs.")
@click.option("--lang-weights", multiple=True, metavar="LANG=W,...",
              help="Relative weight of each language for X-X batch languages and X-Y pair draws "
                   "(unlisted languages get 0). Default: uniform.")
@click.option("--dataset-weights", multiple=True, metavar="NAME=W,...",
              help="Relative weight of each dataset (unlisted get 0). Default: proportional to size.")
@click.option("--allow-same-passage", is_flag=True,
              help="Allow two questions about one paragraph in a batch (default: never, they are false negatives).")
@click.option("--positive", type=click.Choice(POSITIVES), default="sentence", show_default=True,
              help="The positive of a pair: the whole paragraph, the answer sentence alone (the granularity "
                   "of LAReQA candidates), or the answer sentence followed by its context.")
@click.option("--context-sentences", type=int, default=1, show_default=True,
              help="sentence-in-context: sentences before and after the answer sentence given as context "
                   "(0 = the whole rest of the paragraph).")
@click.option("--missing-sentence", type=click.Choice(MISSING_SENTENCE), default="reject", show_default=True,
              help="Sentence positives, rows whose answer sentence is unknown: reject them (rejects file) or "
                   "fall back to the whole paragraph. Counted either way.")
@click.option("--negatives", type=click.Choice(["none", "bm25", "sentence"]), default="sentence", show_default=True,
              help="One hard negative per pair, in the passage's language: bm25 (another paragraph, from a "
                   "rank range) or sentence (another sentence of the positive's paragraph, else article).")
@click.option("--negative-ranks", default="10-30", show_default=True,
              help="BM25 rank range the negative is drawn from (the question's own passage not counted).")
@click.option("--dev-out", type=click.Path(file_okay=False),
              help="Also write a held-out dev batch store here (for mtqa train --dev-batches).")
@click.option("--exclude-groups", type=click.Path(exists=True, dir_okay=False), multiple=True,
              help="File of group_ids to leave out, one per line: a held-out benchmark's heldout_group_ids.txt "
                   "(from mtqa evaluate build-lareqa), so nothing it tests on is trained on. Repeatable (e.g. "
                   "a dev benchmark and the --dev-benchmark of train).")
@stage_options(BatchesConfig)
def build_batches(inputs, out, langs, lang_weights, dataset_weights, allow_same_passage, positive, context_sentences,
                  missing_sentence, negatives, negative_ranks, dev_out, exclude_groups, **options):
    """Build X-X, X-Y or hybrid training batches from QA shard directories.

    INPUTS are QA stores (collect, translate or filter output); rows sharing a group_id are
    translations of one example. Every batch is full, never holds two questions of one
    passage, and comes from one dataset.

    \b
    Example:
      mtqa build-batches runs/demo/filter -o runs/demo/batches --strategy hybrid --alpha 0.5 \\
          --batch-size 128 --epochs 3 --dev-out runs/demo/dev-batches --dev-fraction 0.02
    """
    run = stage_run(options)
    miner = None
    if negatives == "bm25":
        low, high = parse_ranks(negative_ranks)
        try:
            miner = BM25NegativeMiner(low, high, progress=run["progress"])
        except ValueError as exc:
            raise MtqaError(f"--negative-ranks: {exc}") from None
    elif negatives == "sentence":
        miner = SentenceNegatives()
    config = config_from_options(
        BatchesConfig, options, langs=langs or None, lang_weights=parse_weights(lang_weights, "--lang-weights"),
        dataset_weights=parse_weights(dataset_weights, "--dataset-weights"), distinct_passages=not allow_same_passage,
        miner=miner, positive=PositiveFormat(positive, context_sentences, missing_sentence),
        exclude_groups=list(exclude_groups))
    stage = BuildBatchesStage(list(inputs), out, config, dev_out=dev_out, **run)
    result = stage.run()
    rows = []
    for label, res in (("train", result), ("dev", result.get("dev"))):
        if not res:
            continue
        s = res["summary"]
        frac = s["batch_type_fraction"]
        unused = ", ".join(f"e{e}={n}" for e, n in s["unused_groups_by_epoch"].items())
        rows.append([label, str(s["groups"]), str(s["batches"]), f"xx {frac['xx']:.3f} / xy {frac['xy']:.3f}",
                     unused, res["out"]])
    if result.get("negatives"):
        n = result["negatives"]
        if negatives == "sentence":
            rows.append(["negatives", str(n["paragraph"] + n["article"]), "",
                         f"paragraph {n['paragraph']}, article {n['article']}, none {n['none']}", "", ""])
        else:
            rows.append(["negatives", str(n["mined"]), "", f"in range {n['in_range']}, fallback {n['fallback']}, "
                         f"none {n['none']}", "", ""])
    sent = result["summary"].get("answer_sentence")
    if sent and positive != "passage":
        rows.append(["answer sentences", str(sent["located"] + sent["aligned_from_source"]), "",
                     f"aligned from source {sent['aligned_from_source']}, unknown {sent['unknown']} "
                     f"({missing_sentence})", "", ""])
    stats = (result.get("manifest") or {}).get("stats", {})
    by_lang = [(side, stats.get(f"{side}_lang") or {}) for side in ("query", "passage")]
    detail = "; ".join(f"{side} " + ", ".join(f"{k}={v}" for k, v in sorted(n.items())) for side, n in by_lang if n)
    print_summary("build-batches", result, ["split", "groups", "batches", "batch types", "unused groups", "out"],
                  rows, rows_detail=detail or None)
