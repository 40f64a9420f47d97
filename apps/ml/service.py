"""The ML service: recommendations for a listener (their recent tracks and online features from
the feature store) and for seed tracks (/predict), from the production model, re-ranked by the
listener's interest graph and for variety, with a reason per track. It degrades instead of
failing: an unreachable or slow feature store gives the listener's last response (cached) or
popularity, no model gives popularity; the response says so and the metrics count it.

A new production model is loaded beside the current one and swapped in with one assignment:
requests in flight finish on the model they started with.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine, text

from apps.ml import metrics, two_stage
from apps.ml.catalog import Catalog
from apps.ml.exposures import ExposureLog
from apps.ml.last_responses import LastResponses
from apps.ml.responses import popular, response, track
from apps.ml.schemas import (
    ModelsReport,
    ModelStatus,
    PredictQuery,
    Recommendations,
    UserQuery,
)
from apps.ml.seeds import seed_candidates
from feature_store.online import OnlineFeatures, recent_tracks
from inference.diversity import mmr
from inference.interest_graph.affinity import InterestProfile, rerank_scores
from inference.interest_graph.catalog import load_facets
from inference.interest_graph.facets import Facets
from inference.model import ModelSource, ServingModel, in_canary, locate_canary, locate_model
from musicrec.config import Settings

log = logging.getLogger(__name__)

CANDIDATES = 200  # the model's best, before dropping heard tracks and re-ranking
# The re-ranking pool: this many candidates per track asked for, at least MIN_POOL. Checking
# all 200 against the listener's interactions cost 6 ms a request on Redis (benchmarks/serving).
POOL_PER_PICK, MIN_POOL = 4, 40
BREAKER_SECONDS = 2.0  # after a failed feature read, skip the store this long


class FeaturesUnavailable(Exception):
    pass


class MLService:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        features: OnlineFeatures | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.catalog = Catalog.load(engine)
        self.facets = self._load_facets()
        self._features = features
        self._clock = clock
        self._store_down_until = 0.0
        self._probes = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="probe")
        self._model: ServingModel | None = None
        self._canary: ServingModel | None = None
        self._recommender: two_stage.LoadedRecommender | None = None
        self._canary_recommender: two_stage.LoadedRecommender | None = None
        self.exposures = ExposureLog(engine)
        self._reload_lock = threading.Lock()
        self._last_error: str | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.last_responses = LastResponses()
        self.reload()

    # --- the model ---------------------------------------------------------------------------

    @property
    def model(self) -> ServingModel | None:
        return self._model

    def reload(self) -> ModelStatus:
        """Load the production model if it changed (and the catalog with it); on failure keep
        serving the current one."""
        with self._reload_lock:
            try:
                source = locate_model(self.settings)
                if source is not None and (
                    self._model is None or source.version != self._model.version
                ):
                    self._swap(source)
                    metrics.MODEL_RELOADS.labels(outcome="loaded").inc()
                self._reload_canary()
                self._reload_recommender()
                self._last_error = None
            except Exception as exc:  # a half-written or bad model must not stop serving
                log.exception("model reload failed")
                self._last_error = f"{type(exc).__name__}: {exc}"
                metrics.MODEL_RELOADS.labels(outcome="failed").inc()
            metrics.MODEL_INFO.set(self._model.version if self._model else None)
            return self.status()

    def _reload_canary(self) -> None:
        source = locate_canary(self.settings)
        current = self._canary
        if source is None or (self._model and source.version == self._model.version):
            self._canary = None
        elif current is None or current.version != source.version:
            self._canary = ServingModel.load(source, self.engine)
            log.info(
                "canary model %s for %.0f%% of listeners",
                source.version,
                100 * self.settings.canary_share,
            )

    @property
    def recommender(self) -> two_stage.LoadedRecommender | None:
        return self._recommender

    def _reload_recommender(self) -> None:
        """The production version's own recommender when the registry has one (trained with
        it: one version number is the pair), else RECOMMENDER_PATH's; and the canary version's
        own, when it has one (its listeners get production's otherwise)."""
        model, canary = self._model, self._canary
        self._recommender = _recommender_of(
            model.source if model else None, self._recommender, self.settings.recommender_dir
        )
        self._canary_recommender = _recommender_of(
            canary.source if canary else None, self._canary_recommender
        )

    def model_for(self, user_id: str) -> ServingModel | None:
        """The canary for the listeners in its share, else production."""
        canary = self._canary
        if canary is not None and in_canary(user_id, self.settings.canary_share):
            return canary
        return self._model

    def recommender_for(self, user_id: str) -> two_stage.LoadedRecommender | None:
        """The canary version's recommender for the listeners in its share, else production's."""
        canary = self._canary_recommender
        if canary is not None and in_canary(user_id, self.settings.canary_share):
            return canary
        return self._recommender

    def _swap(self, source: ModelSource) -> None:
        model = ServingModel.load(source, self.engine)
        reloading = self._model is not None
        catalog = Catalog.load(self.engine) if reloading else self.catalog
        facets = self._load_facets() if reloading else self.facets
        self.catalog, self.facets, self._model = catalog, facets, model
        log.info("serving model %s (%d items)", model.version, model.n_items)

    def status(self) -> ModelStatus:
        model = self._model
        if model is None:
            return ModelStatus(loaded=False, last_error=self._last_error)
        return ModelStatus(
            loaded=True,
            version=model.version,
            path=str(model.source.checkpoint),
            loaded_at=model.loaded_at.isoformat(),
            items=model.n_items,
            text_seeds=model.text_path is not None,
            canary_version=self._canary.version if self._canary else None,
            last_error=self._last_error,
        )

    def models(self) -> ModelsReport:
        """The served models with their offline metrics and training curves (ops view)."""
        from apps.ml.report import models_report

        return models_report(self.settings, self._model, self._canary, self._last_error)

    def start_polling(self) -> None:
        """Check for a new production model every MODEL_POLL_SECONDS, in the background."""
        interval = self.settings.model_poll_seconds
        if interval <= 0 or self._poller is not None:
            return

        def poll() -> None:
            while not self._stop.wait(interval):
                self.reload()

        self._poller = threading.Thread(target=poll, name="model-poller", daemon=True)
        self._poller.start()

    def close(self) -> None:
        self._stop.set()
        self._probes.shutdown(wait=False)
        if self._poller is not None:
            self._poller.join(timeout=5)
        self.exposures.close()

    # --- online features ---------------------------------------------------------------------

    @property
    def features(self) -> OnlineFeatures | None:
        if self._features is None and self._clock() >= self._store_down_until:
            try:
                self._features = OnlineFeatures.for_settings(
                    self.settings, timeout_seconds=self.settings.feature_timeout_ms / 1000
                )
            except Exception as exc:  # registry or store unreachable: retry after a pause
                log.warning("feature store unavailable: %s", exc)
                self._store_down_until = self._clock() + BREAKER_SECONDS
        return self._features

    def _read(self, kind: str, read: Callable[[OnlineFeatures], Any]) -> Any:
        """One feature read within the time budget, or FeaturesUnavailable. After a failure
        the store is left alone for BREAKER_SECONDS: requests fall back at once instead of each
        waiting for a timeout."""
        features = self.features
        if features is None or self._clock() < self._store_down_until:
            raise FeaturesUnavailable("feature store unavailable")
        started = time.perf_counter()
        try:
            value = read(features)
        except Exception as exc:
            self._store_down_until = self._clock() + BREAKER_SECONDS
            log.warning("feature read failed: %s", exc)
            raise FeaturesUnavailable(f"feature store unavailable ({type(exc).__name__})") from exc
        finally:
            metrics.FEATURE_READ_SECONDS.labels(kind=kind).observe(time.perf_counter() - started)
        return value

    def ready(self) -> dict[str, Any]:
        """What the readiness probe reports: each dependency, and the model."""
        checks: dict[str, Any] = {"database": self._probe(self._ping_database)}
        features = self.features
        if features is None:
            checks["online_store"] = "unavailable"
        else:
            checks["online_store"] = self._probe(features.ping)
            if checks["online_store"] == "ok":
                self._store_down_until = 0.0
        model = self._model
        checks["model"] = model.version if model else "none (serving popularity)"
        return checks

    def _ping_database(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def _probe(self, ping: Callable[[], None]) -> str:
        """ "ok", or why not, within DATABASE_TIMEOUT_SECONDS: a dependency that hangs makes the
        probe say so instead of hanging the readiness check (the call is left to finish in the
        probes' own threads)."""
        timeout = self.settings.database_timeout_seconds
        try:
            self._probes.submit(ping).result(timeout)
        except concurrent.futures.TimeoutError:
            return f"unavailable: no answer within {timeout:g} s"
        except Exception as exc:
            return f"unavailable: {type(exc).__name__}"
        return "ok"

    # --- recommendations ---------------------------------------------------------------------

    def recommend_user(self, query: UserQuery) -> Recommendations:
        try:
            values = self._read(
                "user",
                lambda f: f.user_features(
                    query.user_id,
                    device=query.device,
                    position_in_session=query.position_in_session,
                ),
            )
        except FeaturesUnavailable as exc:
            return self._degraded(query, str(exc))
        history = recent_tracks(values)
        if (loaded := self.recommender_for(query.user_id)) is not None and history:
            return self._recommend_two_stage(loaded, query, history, values)
        model = self.model_for(query.user_id)
        if model is None:
            return self._popular(query, set(history), "no model loaded", fallback=True)
        items = [model.index[uri] for uri in history if uri in model.index]
        if not items:  # a new listener: the cold-start path until they play something
            return self._popular(query, set(history), "new listener", fallback=False)
        candidates, scores = model.candidates(items, CANDIDATES)
        heard = set(history)
        tracks = self.catalog.tracks
        fresh = [
            j
            for j, i in enumerate(candidates)
            if model.vocabulary[i] not in heard and model.vocabulary[i] in tracks
        ]
        keep = self._not_played(query, [model.vocabulary[candidates[j]] for j in fresh], fresh)
        pool, pool_scores = candidates[keep], scores[keep]
        if profile := values.get("user_interest_graph__profile"):
            pool_scores = self._with_interests(profile, pool, pool_scores, model)
        result = self._ranked(query, pool, pool_scores, model, items)
        result.user_id = query.user_id
        self.last_responses.put(query.user_id, result)
        metrics.RECOMMENDATIONS.labels(route="user", source="model").inc()
        self._expose(query, result)
        return result

    def _recommend_two_stage(
        self,
        loaded: two_stage.LoadedRecommender,
        query: UserQuery,
        history: list[str],
        values: dict[str, Any],
    ) -> Recommendations:
        """The two-stage path for a listener: their recent tracks are the seeds; what they
        played or skipped lately is left out; their interest graph re-weights the ranking."""
        seeds = two_stage.history_query(loaded, self.catalog, history)
        items, scores = loaded.recommender.recommend(seeds, CANDIDATES)
        table = loaded.recommender.items
        heard = set(history)
        fresh = [j for j, i in enumerate(items.tolist()) if table.uris[i] not in heard]
        keep = self._not_played(query, [table.uris[items[j]] for j in fresh], fresh)
        keep = keep[: loaded.pool_size(query.k)]
        pool, pool_scores = items[keep], scores[keep].astype(np.float64)
        if (profile := values.get("user_interest_graph__profile")) and self.facets is not None:
            uris = [table.uris[i] for i in pool.tolist()]
            pool_scores = self._interest_scores(profile, uris, pool_scores).astype(np.float64)
        result = two_stage.answer(
            loaded, self.catalog, seeds, pool, pool_scores, query.k, query.diversity
        )
        result.user_id = query.user_id
        result.unmatched, result.unmatched_seeds = [], 0
        self.last_responses.put(query.user_id, result)
        metrics.RECOMMENDATIONS.labels(route="user", source="model").inc()
        self._expose(query, result)
        return result

    def _expose(self, query: UserQuery, result: Recommendations) -> None:
        """Log which version showed the listener which tracks: the canary is judged on it."""
        if result.model_version:
            tracks = [t.track_uri for t in result.tracks]
            self.exposures.record(query.user_id, result.model_version, tracks, query.request_id)

    def _load_facets(self) -> Facets | None:
        if self.settings.interest_graph_weight <= 0:
            return None
        return load_facets(self.engine)

    def _with_interests(
        self,
        profile: str,
        pool: NDArray[np.int64],
        scores: NDArray[np.floating],
        model: ServingModel,
    ) -> NDArray[np.floating]:
        """The pool's scores with the listener's interest-graph affinity added; the model's
        scores as they are when there is no graph to read (a profile is never worth a 500)."""
        if self.facets is None or len(pool) < 2:
            return scores
        return self._interest_scores(profile, [model.vocabulary[i] for i in pool.tolist()], scores)

    def _interest_scores(
        self, profile: str, uris: list[str], scores: NDArray[np.floating]
    ) -> NDArray[np.floating]:
        if self.facets is None or len(uris) < 2:
            return scores
        try:
            interests = InterestProfile.from_json(profile)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("unreadable interest profile: %s", exc)
            return scores
        affinity = interests.affinity(self.facets, uris)
        return rerank_scores(scores, affinity, self.settings.interest_graph_weight)

    def _not_played(self, query: UserQuery, uris: list[str], keys: list[int]) -> list[int]:
        """The keys of the best candidates the listener has not played or skipped in the
        interactions window (beyond the recent sequence): a pool of POOL_PER_PICK per track
        asked for, read chunk by chunk until full (each chunk one online read)."""
        want = max(POOL_PER_PICK * query.k, MIN_POOL)
        kept: list[int] = []
        for start in range(0, len(uris), want):
            chunk = uris[start : start + want]

            def read(features: OnlineFeatures, chunk: list[str] = chunk) -> Any:
                return features.user_track_features(query.user_id, chunk)

            try:
                pairs = self._read("candidates", read)
            except FeaturesUnavailable:  # the sequence already excluded recent plays
                return kept + keys[start:]
            kept += [
                key
                for key, pair in zip(keys[start : start + want], pairs, strict=True)
                if not (
                    pair["user_track_interactions__plays"] or pair["user_track_interactions__skips"]
                )
            ]
            if len(kept) >= want:
                break
        return kept

    def predict(self, query: PredictQuery) -> Recommendations:
        """Recommendations after seed tracks named by title and artist, and the playlist's
        title (a new listener): the two-stage recommender when one is loaded."""
        if (loaded := self._recommender) is not None:
            seeds = two_stage.predict_query(loaded, query)
            items, scores = two_stage.ranked_pool(loaded, seeds, query.k, query.diversity)
            result = two_stage.answer(
                loaded, self.catalog, seeds, items, scores, query.k, query.diversity
            )
            metrics.RECOMMENDATIONS.labels(route="predict", source="model").inc()
            return result
        return self._predict_sequential(query)

    def _predict_sequential(self, query: PredictQuery) -> Recommendations:
        """/predict from the sequential model alone (no two-stage recommender on disk)."""
        model = self._model
        model_tracks = model.index if model is not None else {}
        matched = [
            self.catalog.match(s.track_name, s.artist_name, s.track_uri, model_tracks)
            for s in query.tracks
        ]
        unmatched = sum(uri is None for uri in matched)
        nothing_known = unmatched == len(matched) and (model is None or model.text_path is None)
        if model is None or nothing_known or not query.tracks:
            seeds = {uri for uri in matched if uri}
            reason = "no model loaded" if model is None else "no seed matched"
            reason = "no seed tracks" if model is not None and not query.tracks else reason
            result = self._popular(query, seeds, reason, fallback=True, route="predict")
            result.unmatched = [n for n, uri in enumerate(matched) if uri is None]
            result.unmatched_seeds = unmatched
            return result
        candidates, scores, known = seed_candidates(model, query.tracks, matched, CANDIDATES)
        seeds_heard = {uri for uri in matched if uri}
        keep = [
            j
            for j, i in enumerate(candidates)
            if model.vocabulary[i] not in seeds_heard and model.vocabulary[i] in self.catalog.tracks
        ]
        reason = f"because you like {query.tracks[-1].track_name}"
        result = self._ranked(query, candidates[keep], scores[keep], model, known, reason)
        result.unmatched = [n for n, uri in enumerate(matched) if uri is None]
        result.unmatched_seeds = unmatched
        metrics.RECOMMENDATIONS.labels(route="predict", source="model").inc()
        return result

    def _ranked(
        self,
        query: UserQuery | PredictQuery,
        candidates: NDArray[np.int64],
        candidate_scores: NDArray[np.floating],
        model: ServingModel,
        history: list[int],
        default_reason: str = "recommended for you",
    ) -> Recommendations:
        """The query's k of the candidates (best first), re-ranked for variety, with reasons."""
        k, diversity = query.k, query.diversity
        items, scores = candidates.tolist(), candidate_scores.tolist()
        uris = [model.vocabulary[i] for i in items]
        info = [self.catalog.tracks.get(uri) for uri in uris]
        artists = [t.artist if t else uri for t, uri in zip(info, uris, strict=True)]
        genres = [t.genre if t else None for t in info]
        picks = mmr(scores, artists, genres, k, diversity)
        because = model.because([items[p] for p in picks], history[-50:]) if history else []
        tracks = []
        for n, p in enumerate(picks):
            reason = default_reason
            if because:
                seed = self.catalog.tracks.get(model.vocabulary[because[n]])
                reason = f"because you played {seed.name}" if seed else reason
            tracks.append(track(self.catalog, uris[p], scores[p], reason))
        return response(tracks, diversity, "model", None, model.version)

    def _popular(
        self,
        query: UserQuery | PredictQuery,
        exclude: set[str],
        reason: str,
        fallback: bool,
        route: str = "user",
    ) -> Recommendations:
        if fallback:
            metrics.FALLBACKS.labels(reason=reason).inc()
        metrics.RECOMMENDATIONS.labels(route=route, source="popularity").inc()
        model = self._model
        result = popular(
            self.catalog,
            query.k,
            query.diversity,
            exclude,
            reason if fallback else None,
            model.version if model else None,
        )
        result.user_id = getattr(query, "user_id", None)
        return result

    def _degraded(self, query: UserQuery, reason: str) -> Recommendations:
        cached = self.last_responses.get(query.user_id)
        if cached is not None and len(cached.tracks) >= query.k:
            metrics.FALLBACKS.labels(reason="cached").inc()
            metrics.RECOMMENDATIONS.labels(route="user", source="cached").inc()
            return cached.model_copy(
                update={
                    "tracks": cached.tracks[: query.k],
                    "source": "cached",
                    "fallback": True,
                    "fallback_reason": reason,
                }
            )
        return self._popular(query, set(), reason, fallback=True)


def _recommender_of(
    source: ModelSource | None,
    current: two_stage.LoadedRecommender | None,
    fallback: Path | None = None,
) -> two_stage.LoadedRecommender | None:
    """The recommender registered with `source`, else the one in `fallback` (None: neither);
    `current` when it is loaded from there already. A registered one answers in its version's
    name, as the sequential model does: exposures, and the promotion job, count it for it."""
    registered = source.recommender if source is not None else None
    path = registered or fallback
    version = two_stage.recommender_version(path) if path is not None else None
    if path is None or version is None:
        return None
    if current is not None and current.path == path and current.on_disk == version:
        return current  # a model retrained in place has a new version: loaded again
    loaded = two_stage.load(path)
    if registered is not None and source is not None:
        loaded = replace(loaded, version=source.version)
    log.info("serving recommender %s (%d items) from %s", version, loaded.n_items, path)
    return loaded
