"""``train``: load -> process -> split -> fit (early stopping on validation) -> evaluate -> refit -> save.

The orchestration of a run, above the models (which declare networks and losses) and the
training library (which runs the loop). The time budget covers the whole command: after loading,
what is left (less a reserve for evaluation and writing) is shared between the evaluated fit(s)
and the refit of the served model, which follows the evaluated run's learning-rate path.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

import lmrec
from lmrec.coldstart.onboarding import CHOICE_USERS, GREEDY_USERS, SlateSetting, choose_setting, item_space
from lmrec.config import RunConfig
from lmrec.data import DATASETS, ProcessingConfig, load_dataset
from lmrec.data.profile import DataProfile
from lmrec.data.splits import TEST, TRAIN, VALID, make_split
from lmrec.errors import ConfigError
from lmrec.evaluation.evaluator import Validator, evaluate
from lmrec.evaluation.interest import InterestValidator, evaluate_interest, format_interest
from lmrec.evaluation.report import write_report
from lmrec.explain.interests import InterestCodes, SparseCoded, choose_active, describe_atoms, refit_seconds
from lmrec.explain.visuals import write_visuals
from lmrec.models.base import (
    Accelerated,
    InterestPredictor,
    PrivatelyReleasable,
    PrivatelyTrainable,
    Recommender,
    VectorScorer,
    validate_config,
)
from lmrec.models.registry import get_model_class
from lmrec.privacy import Pseudonymiser
from lmrec.privacy.dp import DP_DIR, DPSGD, Accountant, DPPlan, DPPopularity, dp_popularity
from lmrec.runs import INTERESTS_DIR, Run, item_titles, write_run
from lmrec.social import SOCIAL_DIR, Social, adjacency, id_pairs, read_social
from lmrec.social.blend import BUCKETS as SOCIAL_BUCKETS
from lmrec.social.blend import StageData, choose_weights, score_variants
from lmrec.social.blend import evaluation_seconds as social_seconds
from lmrec.training import distributed
from lmrec.training.auto import DEFAULT_BUDGET_MINUTES
from lmrec.training.config import RuntimeConfig, TrainingConfig
from lmrec.training.device import choose, describe
from lmrec.training.multitask import MultiTask, item_categories
from lmrec.training.regularisers import StateL1

DP_LR = {"adamw": 1e-2, "sgd": 0.5}  # training.lr "auto" under privacy.dp
DP_MAX_LEN = 50  # model.max_len "auto" under privacy.dp
VALID_USERS = 2000  # validation users the choice of atoms per user is made on
CODES_SHARE = 0.04  # of the budget, at most, per fit of the interest codes
RESERVE_SHARE = 0.03  # of the budget, kept for the test evaluation and writing the run
MIN_RESERVE_S = 15.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict  # test metrics of the model trained on the training part
    timings: dict[str, float]
    dataset_stats: dict
    budget_s: float


class Budget:
    """The wall-clock budget of one ``train`` command."""

    def __init__(self, minutes: float) -> None:
        self.total = minutes * 60
        self.start = time.perf_counter()
        self.reserve = max(MIN_RESERVE_S, RESERVE_SHARE * self.total)

    def left(self) -> float:
        return self.total - (time.perf_counter() - self.start)

    def for_fits(self, fits: float, later: float) -> float:
        """Seconds for ``fits`` fits now when fits worth ``later`` of them still follow."""
        return max(1.0, (self.left() - self.reserve) * fits / (fits + later))

    def used(self) -> float:
        return time.perf_counter() - self.start


def train_run(source: str | Path, model_name: str, out: str | Path, config: RunConfig | None = None, *,
              items: str | Path | None = None, social: str | Path | None = None,
              social_columns: tuple[str | None, str | None] = (None, None), forget: set[str] | None = None,
              overwrite: bool = False, log=print) -> TrainResult:
    """Train ``model_name`` on ``source`` (dataset name or interactions file) into run directory ``out``;
    ``social``: a user -> user relation file whose neighbourhoods are blended in (``lmrec.social``);
    ``forget``: user ids whose events are left out entirely (the tombstones of an event store)."""
    config = config or RunConfig()
    klass = get_model_class(model_name)
    requested, cpu_only = config.runtime.device, cpu_only_parts(klass, config)
    device = choose(requested, cpu_only)
    config = config.model_copy(update={"runtime": config.runtime.model_copy(update={"device": device})})
    parallel = distributed.init(device)  # under torchrun: data-parallel fits, rank 0 evaluates and writes
    if parallel and not distributed.is_main():
        log = lambda *_: None  # noqa: E731
        config = config.model_copy(update={"runtime": config.runtime.model_copy(update={"progress": False})})
    log(f"device: {describe(device, requested, cpu_only)}")
    minutes = DEFAULT_BUDGET_MINUTES if config.training.time_budget == "auto" else config.training.time_budget
    budget = Budget(minutes)
    for key in config.model:
        for section, fields in (("training", TrainingConfig.model_fields), ("runtime", RuntimeConfig.model_fields)):
            if key in fields and key not in klass.Config.model_fields:
                raise ConfigError(f"config 'model' section: {key!r} is a {section} setting; put it in the "
                                  f"[{section}] section")
    model_config = validate_config(klass.Config, config.model, f"config 'model' section for {model_name!r}")
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    pseudonyms = Pseudonymiser.of(config.privacy)
    processing = config.data.processing
    if klass.uses_item_content and (processing is None or processing.keep_unseen_items is None):
        base = processing or (DATASETS[str(source)].processing if str(source) in DATASETS else ProcessingConfig())
        processing = base.model_copy(update={"keep_unseen_items": True})
    dataset = load_dataset(source, items=items, columns=config.data.columns, processing=processing,
                           item_id_column=config.data.item_id_column, labels=config.data, exclude_users=forget,
                           user_map=pseudonyms, coarsen_time=config.privacy.coarsen_time)
    stats = dataset.describe()
    if forget:
        log(f"left out every event of {len(forget):,} forgotten user(s) (the event store's tombstones)")
    labels = make_split(dataset.interactions, config.split)
    train = dataset.interactions.subset(labels == TRAIN)
    log(f"data: {stats['users']:,} users, {stats['items']:,} items, {stats['events']:,} events "
        f"(density {stats['density']:.4%}); split {config.split.kind}: "
        f"{(labels == TRAIN).sum():,} train / {(labels == VALID).sum():,} valid / {(labels == TEST).sum():,} test events")
    for step, removed in dataset.report.steps:
        log(f"  processing removed {removed:,} events: {step}")
    tied = stats["tied_last_events"]
    if config.split.kind == "leave-one-out" and tied and tied >= 0.1 * stats["users_with_two_or_more_events"]:
        log(f"  {tied:,} users' test events share their timestamp with the event before: "
            "they keep the input file's order (docs/benchmarks.md, \"Same-day ties on Beauty\")")
    if dataset.interactions.label is not None:
        liked = dataset.interactions.label
        log(f"labels: {(liked == 1).sum():,} likes, {(liked == 0).sum():,} dislikes"
            + (f", {(liked < 0).sum():,} unlabelled events" if (liked < 0).any() else ""))
    elif klass.task == "interest":
        raise ConfigError(f"model {model_name!r} predicts like / dislike and needs labelled events: set "
                          "data.like_threshold (events with a rating column) or data.event_labels (an event_type "
                          "column) in the config, or pass --like-threshold")
    profile = DataProfile.of(train, item_text=klass.uses_item_content)
    log(f"profile of the training part: {profile.describe()}")
    pairs = None
    if social is not None:
        pairs, social_report = read_social(social, dataset.users, user_col=social_columns[0],
                                           friend_col=social_columns[1], user_map=pseudonyms)
        for line in social_report.lines():
            log(line)

    seed_everything(config.training.seed)
    eval_model = klass(model_config, training=config.training, runtime=config.runtime)
    eval_model.attach_items(dataset.item_info, config.data.item_vectors)
    if parallel:
        for what, on in (("privacy.dp", config.privacy.dp is not None), ("runtime.checkpoint_dir",
                                                                          bool(config.runtime.checkpoint_dir))):
            if on:
                raise ConfigError(f"distributed training cannot be combined with {what} yet: run it in one process")
        if not klass.trains_on_sequences:
            raise ConfigError(f"distributed training: model {klass.name!r} has no training loop to share; torchrun "
                              "applies to sasrec, sasrec-text and dnn")
        eval_model.hooks = [*eval_model.hooks, distributed.DistributedDataParallel()]
        log(f"distributed: {distributed.world()[1]} processes ({distributed.backend()}), "
            f"each on 1/{distributed.world()[1]} of every batch")
    if config.multitask.tasks:
        if not klass.trains_on_sequences:
            raise ConfigError(f"multitask: model {klass.name!r} has no next-item training to add heads to; "
                              "multitask applies to sasrec, sasrec-text and dnn")
        categories = item_categories(dataset.item_info, config.multitask) if config.multitask.uses_categories() \
            else None
        eval_model.hooks = [*eval_model.hooks, MultiTask(config.multitask, categories)]
        log(f"multitask: next-item + {', '.join(config.multitask.tasks)} ({config.multitask.weights} weights)")
    if config.interests.state_l1:
        if not klass.trains_on_sequences:
            raise ConfigError(f"interests.state_l1: model {klass.name!r} has no user states to regularise; it applies "
                              "to sasrec, sasrec-text and dnn")
        eval_model.hooks = [*eval_model.hooks, StateL1(config.interests.state_l1)]
    # Interest codes are fit on users' states outside the DP accountant: off under privacy.dp.
    codes_on = config.interests.atoms > 0 and issubclass(klass, VectorScorer) and config.privacy.dp is None
    if codes_on:  # two fits of the codes (evaluated and served model), the choice of k and a test pass come after
        codes_s = min(config.interests.max_seconds, CODES_SHARE * budget.total)
        config = config.model_copy(update={"interests": config.interests.model_copy(update={"max_seconds": codes_s})})
        # Encoding re-fits the weights of every validation and test user's code: about 21 s on Beauty.
        codes_eval_s = 10 + refit_seconds(VALID_USERS * len(config.interests.grid()) + dataset.interactions.n_users,
                                          dataset.interactions.n_items, config.interests.refine_steps)
        budget.reserve += 2 * codes_s + codes_eval_s
    social_s, adj = 0.0, None
    if pairs is not None:  # the weight search and the test buckets come after the fit, inside the budget
        adj = adjacency(pairs, dataset.interactions.n_users)
        related = np.asarray(adj.sum(axis=1)).ravel() > 0
        valid_users, test_users = (np.unique(dataset.interactions.user[labels == stage]) for stage in (VALID, TEST))
        social_s = social_seconds(int(related[valid_users].sum()), int(related[test_users].sum()),
                                  dataset.interactions.n_items)
        budget.reserve += social_s
    augmenter = build_augmenter(config, profile, klass, dataset, log)
    if augmenter:
        eval_model.augmentation = augmenter
    accountant = None
    if config.privacy.dp is not None:
        accountant = setup_dp(config, klass, eval_model, dataset.interactions.n_users, augmenter, social is not None, log)
    timings["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fits = eval_model.fits_per_training()
    # The refit trains on every event: its epochs are longer by about the ratio of events.
    refit_cost = eval_model.refit_share() * len(dataset.interactions) / max(1, len(train)) \
        if config.training.refit else 0.0
    validator = None
    if (labels == VALID).any():
        validator = InterestValidator(dataset.interactions, labels) if klass.task == "interest" \
            else Validator(dataset.interactions, labels)
    if validator is None:
        log("no validation targets (every user has fewer events than the split needs): no early stopping, "
            "the fit runs for its whole plan")
    # Under DP, choosing the epoch on validation would be a use of private data the accountant does not see.
    fit_s = budget.for_fits(fits, refit_cost)
    eval_model.fit(train, None if accountant else validator,
                   time_budget_s=distributed.broadcast(fit_s) if parallel else fit_s)
    if parallel and not distributed.is_main():  # the refit is shared; evaluating and writing are rank 0's
        if config.training.refit:
            eval_model.refit(dataset.interactions, time_budget_s=distributed.broadcast(0.0))
        return TrainResult(Path(out), {}, {}, stats, budget.total)
    if accountant and validator is not None and eval_model.train_state is not None:  # reported, chooses nothing
        eval_model.train_state.best_score = float(validator(eval_model))
    timings["fit_s"] = time.perf_counter() - t0
    log_choices(eval_model, log)
    for note in eval_model.fit_notes():
        log(note)
    if augmenter:
        log(f"augmentation: {format_augmentation(eval_model.augmentation_summary)}")

    t0 = time.perf_counter()
    result = evaluate(eval_model, dataset.interactions, labels, TEST, config.evaluation, progress=config.runtime.progress)
    summary = result.summary()
    if isinstance(eval_model, InterestPredictor) and dataset.interactions.label is not None:
        summary["interest"] = evaluate_interest(eval_model, dataset.interactions, labels, TEST,
                                                seed=config.training.seed)
        log(format_interest(summary["interest"]))
    timings["evaluate_s"] = time.perf_counter() - t0
    codes = None
    if codes_on:
        t0 = time.perf_counter()
        codes, summary["interests"] = evaluate_codes(eval_model, summary, train, dataset, labels, validator, config,
                                                     log)
        timings["interests_s"] = time.perf_counter() - t0
        budget.reserve -= config.interests.max_seconds + codes_eval_s  # only the served model's codes are to come

    onboarding = None
    # Under DP the choice would read private histories outside the accountant: the default slate.
    if validator is not None and klass.task == "next-item" and accountant is None:
        t0 = time.perf_counter()
        onboarding = choose_onboarding(eval_model, dataset.interactions, labels, config.training.seed)
        timings["onboarding_s"] = time.perf_counter() - t0
        log(f"{format_onboarding(onboarding)}; {timings['onboarding_s']:.1f} s")

    social_artifact = None
    if pairs is not None:
        t0 = time.perf_counter()
        social_artifact, summary["social"] = evaluate_social(eval_model, dataset, labels, pairs, adj,
                                                             config.training.seed)
        timings["social_s"] = time.perf_counter() - t0
        budget.reserve -= social_s
        log(format_social(summary["social"]))

    models: dict[str, Recommender] = {"model": eval_model}
    if config.training.refit:
        seed_everything(config.training.seed)
        t0 = time.perf_counter()
        refit_s = budget.for_fits(1, 0)
        final = eval_model.refit(dataset.interactions,
                                 time_budget_s=distributed.broadcast(refit_s) if parallel else refit_s)
        timings["refit_s"] = time.perf_counter() - t0
        models = {"model": final, "model-eval": eval_model}
        start = "from the evaluated weights" if eval_model.refit_share() < 1 and final.train_state else "from scratch"
        log(f"refit on every event ({start}): {describe_training(final)}")
        if codes is not None:
            t0 = time.perf_counter()
            served = config.interests.model_copy(update={"active": codes.active})
            codes = InterestCodes.fit(final, dataset.interactions.sequences(), served, seed=config.training.seed)
            timings["interests_s"] += time.perf_counter() - t0
    dp_popularity_counts = None
    if accountant is not None:  # the service's popularity fallback, counted by the same accountant
        dp_popularity_counts = dp_popularity(dataset.interactions.sequences(), dataset.interactions.n_items, accountant,
                               config.training.seed)
        summary["privacy"] = accountant.summary()
        log(f"differential privacy: epsilon {summary['privacy']['epsilon']:.2f} spent of {accountant.plan.epsilon:g} "
            f"(delta {accountant.plan.delta:.2g}; {accountant.describe_steps()} and the popularity counts)")
    if codes is not None:  # the report lists the served model's atoms
        summary["interests"]["atoms_described"] = describe_atoms(
            codes, dataset.items.ids, item_titles(dataset.item_info, np.arange(len(dataset.items))), limit=20)

    timings["total_s"] = budget.used()  # writing the run (a few seconds) comes on top
    meta = {
        "lmrec_version": lmrec.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": model_name,
        "data": {"name": dataset.name, "source": str(source), "items": str(items) if items else None},
        "dataset": stats,
        "profile": profile.as_dict(),
        # The evaluated model's resolved configs: what "auto" became is recorded, not "auto".
        "config": config.model_dump(mode="json") | {"model": eval_model.config.model_dump(mode="json"),
                                                    "training": eval_model.training.model_dump(mode="json")},
        "auto_choices": eval_model.auto_choices,
        "augmentation": eval_model.augmentation_summary if augmenter else None,
        "privacy": summary.get("privacy"),
        "onboarding": onboarding,
        "timings": timings,
        "time_budget_s": budget.total,
    }
    artifacts = {INTERESTS_DIR: codes} if codes is not None else {}
    if social_artifact is not None:
        artifacts[SOCIAL_DIR] = social_artifact
    if dp_popularity_counts is not None:
        artifacts[DP_DIR] = DPPopularity(dp_popularity_counts)
    out = write_run(Path(out), meta=meta, dataset=dataset, labels=labels, models=models, artifacts=artifacts,
                    overwrite=overwrite)
    write_visuals(Run.open(out))
    write_report(out, summary, title=f"{model_name} on {dataset.name}", context=report_context(meta),
                 head_fraction=config.evaluation.head_fraction)
    return TrainResult(out, summary, timings, stats, budget.total)


def choose_onboarding(model: Recommender, data, labels: np.ndarray, seed: int) -> dict:
    """The new-user slate's setting (``lmrec.coldstart.onboarding``), chosen on up to CHOICE_USERS
    validation users treated as new: the clicks and the items judged are their events before the
    test event; popularity, the item space and the greedy slates' users (up to GREEDY_USERS
    others, their training events) are the training part's. With fewer than 2 x CHOICE_USERS
    users, half of them judge and the other half build the greedy slates."""
    rng = np.random.default_rng(seed)
    users = np.unique(data.user[labels == VALID])
    # The greedy slates need users of their own: with fewer than 2 x CHOICE_USERS, half each.
    users = np.sort(rng.choice(users, min(CHOICE_USERS, max(1, len(users) // 2)), replace=False))
    known = data.subset(labels != TEST).sequences()
    train = data.subset(labels == TRAIN)
    others = np.setdiff1d(np.unique(train.user), users)
    others = np.sort(rng.choice(others, min(GREEDY_USERS, len(others)), replace=False))
    sequences = train.sequences()
    setting, scores = choose_setting(model, item_space(model, train.to_matrix()), train.item_counts(),
                                     [known[u] for u in users], builders=[sequences[u] for u in others])
    return setting.as_dict() | {"chosen": setting.name(), "users": len(users), "greedy_users": len(others),
                                "ndcg_after_3_clicks": scores}


def format_onboarding(choice: dict) -> str:
    scores = choice["ndcg_after_3_clicks"]
    setting = SlateSetting.from_dict(choice).describe()
    return (f"onboarding: the first slate of new users is {setting}, chosen on {choice['users']:,} validation users "
            f"treated as new (NDCG@10 after 3 clicks {scores[choice['chosen']]:.4f}; popularity list "
            f"{scores['popularity']:.4f})")


def evaluate_social(model: Recommender, dataset, labels: np.ndarray, pairs: np.ndarray, adj, seed: int
                    ) -> tuple[Social, dict]:
    """Blend weights per history bucket chosen on validation; on test, for users with relations,
    NDCG@10 of the model, the neighbourhood alone, popularity and the blend, their histories cut to
    each bucket's typical length (the target unchanged). ``adj``: ``adjacency(pairs, users)``."""
    weights = choose_weights(model, dataset.interactions, labels, adj, VALID, seed=seed)
    summary = {"relations": len(pairs), "users_with_relations": int((np.asarray(adj.sum(axis=1)).ravel() > 0).sum()),
               "buckets": {}}
    test = StageData.of(dataset.interactions, labels, TEST)
    for name, _, _, cut in SOCIAL_BUCKETS:
        combo = weights.combo(name)
        v = score_variants(model, test, adj, cut, [combo])
        summary["buckets"][name] = {
            "history": "whole" if cut is None else f"last {cut}", "users": len(v.users), "alpha": combo[0],
            "fof": combo[1], "sim": combo[2], **{k: float(x.mean()) if len(x) else None for k, x in
                                (("model", v.model), ("social", v.social), ("popularity", v.popularity),
                                 ("blend", v.blends[combo]))}}
    return Social(id_pairs(pairs, dataset.users), weights), summary


def setup_dp(config: RunConfig, klass, model: Recommender, users: int, augmenter, social: bool, log) -> Accountant:
    """Calibrate the noise of a run under ``privacy.dp`` and make ``model``'s fits DP-SGD fits, or
    Gaussian releases for a ``PrivatelyReleasable`` model."""
    dp = config.privacy.dp
    fits = 2 if config.training.refit else 1
    if issubclass(klass, PrivatelyReleasable):
        if social:
            raise ConfigError("privacy.dp cannot be combined with --social: turn one of them off")
        plan = DPPlan.make_release(dp, users, fits)
        accountant = Accountant(plan)
        model.release_privately(plan.noise_multiplier, accountant.release)
        log(plan.describe())
        return accountant
    if not issubclass(klass, PrivatelyTrainable):
        raise ConfigError(f"privacy.dp: model {klass.name!r} cannot be trained privately; use transitions (a Gaussian "
                          "release), or sasrec, dnn or sasrec-text (fusion 'text' or 'id') with DP-SGD")
    if reason := model.dp_unsupported():
        raise ConfigError(f"privacy.dp: {reason}")
    combined = {"--social": social, "multitask": bool(config.multitask.tasks),
                "interests.state_l1": bool(config.interests.state_l1), "augmentation": augmenter is not None,
                "runtime.checkpoint_dir": bool(config.runtime.checkpoint_dir)}
    for what, on in combined.items():
        if on:
            raise ConfigError(f"privacy.dp cannot be combined with {what}: turn one of them off")
    plan = DPPlan.make(dp, users, fits=fits)
    accountant = Accountant(plan)
    model.hooks = [*model.hooks, DPSGD(accountant)]
    apply_dp_rules(model, dp, plan)
    log(plan.describe())
    log(f"privacy.dp: each fit runs its {dp.epochs} planned epochs (no early stopping on validation); no interest "
        "codes (they would be fit on users' states outside the accountant)")
    return accountant


def apply_dp_rules(model: Recommender, dp, plan: DPPlan) -> None:
    """The settings a DP fit gets where the user left "auto" (chosen by benchmarks/dp.py screen on
    ML-1M validation): few, noisy steps want a short warm-up and their own learning rate; windows
    of DP_MAX_LEN events make per-user gradients cheap enough for the epochs DP needs. Each fit
    runs its planned epochs: no early stopping."""
    t = model.training
    model.training = t.model_copy(update={"epochs": dp.epochs, "patience": None} | (
        {"lr": DP_LR[dp.optimizer]} if t.lr == "auto" else {}) | (
        {"warmup_steps": max(1, plan.steps // 20)} if t.warmup_steps == "auto" else {}) | (
        {"refit_start": "scratch"} if t.refit_start == "auto" else {}))  # the plan counts a whole refit
    if getattr(model.config, "max_len", None) == "auto":
        model.config = model.config.model_copy(update={"max_len": DP_MAX_LEN})


def format_social(summary: dict) -> str:
    rows = [f"{b} ({s['history']}, {s['users']:,} users, alpha {s['alpha']:g}, sim {s['sim']:g}): blend "
            f"{s['blend']:.4f}, model {s['model']:.4f}, social {s['social']:.4f}, popularity {s['popularity']:.4f}"
            for b, s in summary["buckets"].items() if s["users"]]
    return "social blend, test NDCG@10 of users with relations by history kept: " + "; ".join(rows)


def evaluate_codes(model: Recommender, dense: dict, train, dataset, labels: np.ndarray, validator, config: RunConfig,
                   log) -> tuple[InterestCodes, dict]:
    """Fit the evaluated model's interest codes on its training histories, choose the atoms per user
    on validation and measure on test how much of the dense model's NDCG (``dense``: its test
    summary) recommendations from the codes keep."""
    cfg = config.interests
    codes = InterestCodes.fit(model, train.sequences(), cfg, seed=config.training.seed, log=log)
    ks = config.evaluation.ks
    metric = f"ndcg@{10 if 10 in ks else ks[0]}"
    out: dict = {"atoms": cfg.atoms}
    if validator is not None:
        out |= choose_active(model, codes, cfg, validator.subsample(VALID_USERS))
    else:
        codes.set_active(codes.fit_info["grid"][-1])
    coded = SparseCoded(model, codes)
    sparse = evaluate(coded, dataset.interactions, labels, TEST, config.evaluation).summary()
    per_user = torch.cat(coded.atoms_used).float() if coded.atoms_used else torch.zeros(0)  # (U,) active atoms
    out |= {"active": codes.active, "live_atoms": int((codes.atom_usage > 0).sum()),
            "atoms_per_user": float(per_user.mean()) if len(per_user) else 0.0,
            "metric": metric, "test": {"dense": _by_history(dense, metric), "sparse": _by_history(sparse, metric)},
            "fit": codes.fit_info}
    d, sp = out["test"]["dense"]["all"], out["test"]["sparse"]["all"]
    out["test_keep"] = sp / d if d else None
    kept = (f"recommendations from the codes keep {out['test_keep']:.1%} of the test {metric} ({sp:.4f} of {d:.4f})"
            if d else f"no test {metric} to compare")
    log(f"interest codes: {out['atoms_per_user']:.1f} of {cfg.atoms} atoms per user (k={codes.active}); {kept}")
    return codes, out


def _by_history(summary: dict, metric: str) -> dict:
    return {"all": summary["overall"][metric]} | {b: v[metric] for b, v in summary["by_history"].items()}


def cpu_only_parts(klass, config: RunConfig) -> list[str]:
    """What of this run's fit trains on the CPU only (``lmrec.training.device``), judged from the
    config before the model is built (augmentation "recommended" counts: it may switch on)."""
    parts = [] if issubclass(klass, Accelerated) else [f"model {klass.name!r}"]
    dp_sgd = config.privacy.dp is not None and issubclass(klass, PrivatelyTrainable)
    return parts + [what for what, on in (("data augmentation", bool(config.augmentation.methods)),
                                          ("DP-SGD", dp_sgd),
                                          ("multitask heads", bool(config.multitask.tasks))) if on]


def build_augmenter(config: RunConfig, profile: DataProfile, klass, dataset, log):
    """The run's augmentation (None when off): methods resolved for the training part's profile."""
    from lmrec.augment.io import read_virtual_users
    from lmrec.augment.plan import Augmenter

    aug = config.augmentation
    methods = aug.resolved_methods(profile)
    if aug.methods == "recommended":
        log(f"augmentation 'recommended' for a {profile.regime} profile: {', '.join(methods) or 'none'}")
    if not methods:
        return None
    if not klass.trains_on_sequences:
        raise ConfigError(f"augmentation: model {klass.name!r} does not train on event sequences; augmentation "
                          "applies to sasrec, sasrec-text and dnn")
    augmenter = Augmenter(aug, methods, seed=config.training.seed)
    if "gan" in methods and aug.gan.file:
        augmenter.virtual = read_virtual_users(aug.gan.file, dataset.items)
        augmenter.gan_summary = {"file": aug.gan.file}
    return augmenter


def format_augmentation(summary: dict) -> str:
    parts = []
    for method in summary.get("methods", []):
        detail = summary.get(method, {})
        parts.append(f"{method} ({', '.join(f'{k} {v}' for k, v in detail.items())})" if detail else method)
    return "; ".join(parts)


def describe_training(model: Recommender) -> str:
    st = model.train_state
    if st is None:
        return "closed form"
    return (f"{st.epoch} epochs, {st.steps:,} steps, {st.train_seconds:.0f}s"
            + (f", stopped by {st.stopped_by}" if st.stopped_by else ""))


def log_choices(model: Recommender, log) -> None:
    if model.auto_choices:
        log("automatic settings (set any of them to override): "
            + ", ".join(f"{k}={v}" for k, v in model.auto_choices.items()))
    st = model.train_state
    if st is not None:
        metric = "AUC" if model.task == "interest" else "NDCG@10"
        log(f"fit: {describe_training(model)}; best validation {metric} {st.best_score:.4f} at epoch {st.best_epoch}"
            + (f"; validation every {st.eval_every} epochs" if st.eval_every else ""))


def evaluate_run(r, *, k: int = 10, include_seen: bool = False, progress: bool = True) -> dict:
    """Test metrics of a run's evaluated model (full ranking), written to its metrics.json, report.md
    and plots/ (``lmrec evaluate``); what train measured besides ranking is kept, not redone."""
    cfg = r.config.evaluation.model_copy(update={"exclude_seen": not include_seen,
                                                 "ks": sorted({*r.config.evaluation.ks, k})})
    summary = evaluate(r.load_model("eval"), r.dataset.interactions, r.labels, TEST, cfg, progress=progress).summary()
    if (r.path / "metrics.json").exists():
        before = json.loads((r.path / "metrics.json").read_text())
        summary |= {key: before[key] for key in ("interest", "interests") if key in before}
    meta = r.meta | {"config": r.meta["config"] | {"evaluation": cfg.model_dump()}}
    write_report(r.path, summary, title=f"{r.model_name} on {r.dataset.name}", context=report_context(meta),
                 head_fraction=cfg.head_fraction)
    return summary


def report_context(meta: dict) -> dict:
    split = meta["config"]["split"]
    return {
        "model": meta["model"],
        "dataset": f"{meta['data']['name']} ({meta['dataset']['users']:,} users, {meta['dataset']['items']:,} items, "
                   f"{meta['dataset']['events']:,} events)",
        "split": split["kind"],
        "seen items excluded": meta["config"]["evaluation"]["exclude_seen"],
        "created": meta["created"],
    } | ({"augmentation": format_augmentation(meta["augmentation"])} if meta.get("augmentation") else {}) | (
        {"differential privacy": f"epsilon {meta['privacy']['epsilon']:.2f} spent of {meta['privacy']['epsilon_target']:g} "
                                 f"(delta {meta['privacy']['delta']:.2g}, {meta['privacy']['steps']:,} "
                                 f"{'releases' if meta['privacy'].get('mechanism') == 'release' else 'DP-SGD steps'}, "
                                 "popularity counts)"} if meta.get("privacy") else {}) | (
        {"wall time": f"{meta['timings']['total_s'] / 60:.1f} of {meta['time_budget_s'] / 60:g} budgeted minutes"}
         if "time_budget_s" in meta else {})
