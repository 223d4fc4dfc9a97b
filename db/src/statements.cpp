#include "statements.hpp"

namespace forkcast::db::sql {

// ---- users ----------------------------------------------------------------------------
// Columns: id, profile, token_sha256, created_us, updated_us.

const Statement kUserInsert{"user_insert", R"sql(
INSERT INTO users (profile, token_sha256) VALUES ($1::jsonb, $2)
RETURNING id::text, profile::text, token_sha256,
          (extract(epoch FROM created_at) * 1000000)::bigint,
          (extract(epoch FROM updated_at) * 1000000)::bigint)sql"};

const Statement kUserById{"user_by_id", R"sql(
SELECT id::text, profile::text, token_sha256,
       (extract(epoch FROM created_at) * 1000000)::bigint,
       (extract(epoch FROM updated_at) * 1000000)::bigint
FROM users WHERE id = $1::uuid)sql"};

const Statement kUserByToken{"user_by_token", R"sql(
SELECT id::text, profile::text, token_sha256,
       (extract(epoch FROM created_at) * 1000000)::bigint,
       (extract(epoch FROM updated_at) * 1000000)::bigint
FROM users WHERE token_sha256 = $1)sql"};

const Statement kUserUpdateProfile{"user_update_profile", R"sql(
UPDATE users SET profile = $2::jsonb, updated_at = now() WHERE id = $1::uuid
RETURNING id::text, profile::text, token_sha256,
          (extract(epoch FROM created_at) * 1000000)::bigint,
          (extract(epoch FROM updated_at) * 1000000)::bigint)sql"};

const Statement kUserExists{"user_exists", R"sql(
SELECT 1 FROM users WHERE id = $1::uuid)sql"};

// ---- user_state -----------------------------------------------------------------------
// Columns: user_id, day, state, version, updated_us.

const Statement kStateUpsert{"state_upsert", R"sql(
INSERT INTO user_state (user_id, day, state) VALUES ($1::uuid, $2::date, $3::jsonb)
ON CONFLICT (user_id, day) DO UPDATE
  SET state = EXCLUDED.state, version = user_state.version + 1, updated_at = now()
RETURNING user_id::text, to_char(day, 'YYYY-MM-DD'), state::text, version,
          (extract(epoch FROM updated_at) * 1000000)::bigint)sql"};

const Statement kStateInsertNew{"state_insert_new", R"sql(
INSERT INTO user_state (user_id, day, state) VALUES ($1::uuid, $2::date, $3::jsonb)
ON CONFLICT (user_id, day) DO NOTHING
RETURNING user_id::text, to_char(day, 'YYYY-MM-DD'), state::text, version,
          (extract(epoch FROM updated_at) * 1000000)::bigint)sql"};

const Statement kStateUpdateVersion{"state_update_version", R"sql(
UPDATE user_state SET state = $3::jsonb, version = version + 1, updated_at = now()
WHERE user_id = $1::uuid AND day = $2::date AND version = $4
RETURNING user_id::text, to_char(day, 'YYYY-MM-DD'), state::text, version,
          (extract(epoch FROM updated_at) * 1000000)::bigint)sql"};

const Statement kStateGet{"state_get", R"sql(
SELECT user_id::text, to_char(day, 'YYYY-MM-DD'), state::text, version,
       (extract(epoch FROM updated_at) * 1000000)::bigint
FROM user_state WHERE user_id = $1::uuid AND day = $2::date)sql"};

const Statement kStateLatest{"state_latest", R"sql(
SELECT user_id::text, to_char(day, 'YYYY-MM-DD'), state::text, version,
       (extract(epoch FROM updated_at) * 1000000)::bigint
FROM user_state WHERE user_id = $1::uuid ORDER BY day DESC LIMIT 1)sql"};

// ---- decisions ------------------------------------------------------------------------
// Columns: event_id, user_id, decided_us, slot, model_version, policy, epsilon, candidates,
// scores, probabilities, chosen, ranked, state_features, candidate_features,
// candidate_feature_dim, context.

// The lists (candidates, ranked, scores, probabilities, features) are typed arrays
// (migration 0002) and arrive as binary parameters (db/src/pg_binary.hpp): nothing is
// printed or parsed on the way.
const Statement kDecisionInsert{"decision_insert", R"sql(
INSERT INTO decisions (user_id, decided_at, slot, model_version, policy, epsilon, candidates,
                       scores, probabilities, chosen, ranked, state_features,
                       candidate_features, candidate_feature_dim, context)
VALUES ($1::uuid, COALESCE(timestamptz 'epoch' + $2::bigint * interval '1 microsecond', now()),
        $3, $4, $5, $6, $7::text[], $8::real[], $9::double precision[], $10, $11::text[],
        $12::real[], CASE WHEN $14::integer > 0 THEN $13::real[] END, $14::integer, $15::jsonb)
RETURNING event_id::text, (extract(epoch FROM decided_at) * 1000000)::bigint)sql"};

// A batch of decisions whose event ids the caller generated (the service's asynchronous
// decision log), in one statement. Per decision ($1-$12, one element each): event_id,
// user_id, decided_us (microseconds since the epoch), slot, model_version, policy, epsilon,
// candidates and ranked (meal ids joined by U+001F, which ids may not contain), chosen,
// candidate_feature_dim and context (JSON text). The numbers of all decisions are
// concatenated: scores ($13) and probabilities ($14) sliced by the candidate offsets $16,
// state features ($15) by $17, candidate features ($18) by $19; offsets have one more
// element than there are decisions. A replayed event id is skipped, so a batch retried
// after a lost COMMIT acknowledgement stores nothing twice. Returns the event ids stored now.
const Statement kDecisionInsertBatch{"decision_insert_batch", R"sql(
INSERT INTO decisions (event_id, user_id, decided_at, slot, model_version, policy, epsilon,
                       candidates, scores, probabilities, chosen, ranked, state_features,
                       candidate_features, candidate_feature_dim, context)
SELECT r.event_id, r.user_id, timestamptz 'epoch' + r.decided_us * interval '1 microsecond',
       r.slot, r.model_version, r.policy, r.epsilon,
       string_to_array(r.candidates, E'\x1f'),
       ($13::real[])[($16::integer[])[r.i] + 1 : ($16::integer[])[r.i + 1]],
       ($14::double precision[])[($16::integer[])[r.i] + 1 : ($16::integer[])[r.i + 1]],
       r.chosen,
       string_to_array(r.ranked, E'\x1f'),
       ($15::real[])[($17::integer[])[r.i] + 1 : ($17::integer[])[r.i + 1]],
       CASE WHEN r.feature_dim > 0
            THEN ($18::real[])[($19::integer[])[r.i] + 1 : ($19::integer[])[r.i + 1]] END,
       r.feature_dim, r.context::jsonb
FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::text[],
            $7::double precision[], $8::text[], $9::text[], $10::text[], $11::integer[],
            $12::text[])
     WITH ORDINALITY AS r(event_id, user_id, decided_us, slot, model_version, policy, epsilon,
                          candidates, chosen, ranked, feature_dim, context, i)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id::text)sql"};

const Statement kDecisionById{"decision_by_id", R"sql(
SELECT event_id::text, user_id::text, (extract(epoch FROM decided_at) * 1000000)::bigint,
       slot, model_version, policy, epsilon, to_json(candidates)::text, to_json(scores)::text,
       to_json(probabilities)::text, chosen, to_json(ranked)::text, to_json(state_features)::text,
       to_json(candidate_features)::text, candidate_feature_dim, context::text
FROM decisions WHERE event_id = $1::uuid)sql"};

const Statement kDecisionCountForUser{"decision_count_for_user", R"sql(
SELECT count(*) FROM decisions WHERE user_id = $1::uuid)sql"};

const Statement kDecisionsForUser{"decisions_for_user", R"sql(
SELECT event_id::text, user_id::text, (extract(epoch FROM decided_at) * 1000000)::bigint,
       slot, model_version, policy, epsilon, to_json(candidates)::text, to_json(scores)::text,
       to_json(probabilities)::text, chosen, to_json(ranked)::text, to_json(state_features)::text,
       to_json(candidate_features)::text, candidate_feature_dim, context::text
FROM decisions WHERE user_id = $1::uuid
ORDER BY decided_at DESC, event_id LIMIT $2)sql"};

const Statement kDecisionsBetween{"decisions_between", R"sql(
SELECT event_id::text, user_id::text, (extract(epoch FROM decided_at) * 1000000)::bigint,
       slot, model_version, policy, epsilon, to_json(candidates)::text, to_json(scores)::text,
       to_json(probabilities)::text, chosen, to_json(ranked)::text, to_json(state_features)::text,
       to_json(candidate_features)::text, candidate_feature_dim, context::text
FROM decisions
WHERE decided_at >= timestamptz 'epoch' + $1::bigint * interval '1 microsecond'
  AND decided_at < timestamptz 'epoch' + $2::bigint * interval '1 microsecond'
ORDER BY decided_at, event_id LIMIT $3)sql"};

// ---- feedback -------------------------------------------------------------------------
// Columns: id, event_id, meal_id, outcome, rating, reward, idempotency_key, received_us.

// One statement stores a whole group-commit batch ($1: a JSON array of writes, each with
// its position "ord"). ON CONFLICT DO NOTHING skips keys already stored; for those, the
// LATERAL subquery reads the stored row (its snapshot predates the INSERT, so a key stored
// by a concurrent transaction that committed meanwhile shows up as neither new nor stored:
// the caller looks those up again with kFeedbackByKey). Rows come back in any order; "ord"
// says which write each one answers.
// Rows are inserted in key order: two batches that share keys (a client's retry racing its
// original) then take the keys' locks in the same order and cannot deadlock.
// Why LATERAL ... LIMIT 1 and not a plain join: the planner thinks jsonb_to_recordset
// returns 100 rows, so on a young feedback table a plain join becomes a hash join over a
// sequential scan of the whole table, and the prepared plan keeps doing that as the table
// grows. The LIMIT keeps the subquery apart: one index probe per write, and none at all
// (one-time filter) for writes that were just inserted.
const Statement kFeedbackWriteBatch{"feedback_write_batch", R"sql(
WITH input AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
    ord integer, event_id uuid, meal_id text, outcome text, rating smallint,
    reward double precision, idempotency_key text, received_us bigint)
), inserted AS (
  INSERT INTO feedback (event_id, meal_id, outcome, rating, reward, idempotency_key, received_at)
  SELECT event_id, meal_id, outcome, rating, reward, idempotency_key,
         COALESCE(timestamptz 'epoch' + received_us * interval '1 microsecond', now())
  FROM input ORDER BY idempotency_key, ord
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING id, idempotency_key
)
SELECT input.ord, inserted.id, stored.id, stored.event_id::text, stored.meal_id,
       stored.outcome, stored.rating, stored.reward
FROM input
LEFT JOIN inserted ON inserted.idempotency_key = input.idempotency_key
LEFT JOIN LATERAL (
  SELECT f.id, f.event_id, f.meal_id, f.outcome, f.rating, f.reward FROM feedback AS f
  WHERE inserted.id IS NULL AND f.idempotency_key = input.idempotency_key
  LIMIT 1
) AS stored ON true)sql"};

const Statement kFeedbackByKey{"feedback_by_key", R"sql(
SELECT id, event_id::text, meal_id, outcome, rating, reward, idempotency_key,
       (extract(epoch FROM received_at) * 1000000)::bigint
FROM feedback WHERE idempotency_key = $1)sql"};

const Statement kFeedbackForEvent{"feedback_for_event", R"sql(
SELECT id, event_id::text, meal_id, outcome, rating, reward, idempotency_key,
       (extract(epoch FROM received_at) * 1000000)::bigint
FROM feedback WHERE event_id = $1::uuid ORDER BY received_at, id)sql"};

// ---- meal_log -------------------------------------------------------------------------
// Columns: id, user_id, meal_id, slot, eaten_us, servings, event_id, idempotency_key, logged_us.

const Statement kMealLogInsert{"meal_log_insert", R"sql(
INSERT INTO meal_log (user_id, meal_id, slot, eaten_at, servings, event_id, idempotency_key)
VALUES ($1::uuid, $2, $3, timestamptz 'epoch' + $4::bigint * interval '1 microsecond', $5,
        $6::uuid, $7)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id, user_id::text, meal_id, slot, (extract(epoch FROM eaten_at) * 1000000)::bigint,
          servings, event_id::text, idempotency_key,
          (extract(epoch FROM logged_at) * 1000000)::bigint)sql"};

const Statement kMealLogByKey{"meal_log_by_key", R"sql(
SELECT id, user_id::text, meal_id, slot, (extract(epoch FROM eaten_at) * 1000000)::bigint,
       servings, event_id::text, idempotency_key,
       (extract(epoch FROM logged_at) * 1000000)::bigint
FROM meal_log WHERE idempotency_key = $1)sql"};

const Statement kMealLogForUser{"meal_log_for_user", R"sql(
SELECT id, user_id::text, meal_id, slot, (extract(epoch FROM eaten_at) * 1000000)::bigint,
       servings, event_id::text, idempotency_key,
       (extract(epoch FROM logged_at) * 1000000)::bigint
FROM meal_log
WHERE user_id = $1::uuid
  AND eaten_at >= timestamptz 'epoch' + $2::bigint * interval '1 microsecond'
  AND eaten_at < timestamptz 'epoch' + $3::bigint * interval '1 microsecond'
ORDER BY eaten_at, id)sql"};

// ---- models ---------------------------------------------------------------------------
// Columns: version, kind, sha256, path, metrics, status, created_us, promoted_us, retired_us.

const Statement kModelInsert{"model_insert", R"sql(
INSERT INTO models (version, kind, sha256, path, metrics) VALUES ($1, $2, $3, $4, $5::jsonb)
RETURNING version, kind, sha256, path, metrics::text, status,
          (extract(epoch FROM created_at) * 1000000)::bigint,
          (extract(epoch FROM promoted_at) * 1000000)::bigint,
          (extract(epoch FROM retired_at) * 1000000)::bigint)sql"};

const Statement kModelByVersion{"model_by_version", R"sql(
SELECT version, kind, sha256, path, metrics::text, status,
       (extract(epoch FROM created_at) * 1000000)::bigint,
       (extract(epoch FROM promoted_at) * 1000000)::bigint,
       (extract(epoch FROM retired_at) * 1000000)::bigint
FROM models WHERE version = $1)sql"};

const Statement kModelsAll{"models_all", R"sql(
SELECT version, kind, sha256, path, metrics::text, status,
       (extract(epoch FROM created_at) * 1000000)::bigint,
       (extract(epoch FROM promoted_at) * 1000000)::bigint,
       (extract(epoch FROM retired_at) * 1000000)::bigint
FROM models ORDER BY created_at DESC, version)sql"};

const Statement kModelProduction{"model_production", R"sql(
SELECT version, kind, sha256, path, metrics::text, status,
       (extract(epoch FROM created_at) * 1000000)::bigint,
       (extract(epoch FROM promoted_at) * 1000000)::bigint,
       (extract(epoch FROM retired_at) * 1000000)::bigint
FROM models WHERE status = 'production')sql"};

// Serialises promotions (held until the transaction ends): without it two concurrent
// promotions would both retire the same old model and the second would then violate the
// single-production index instead of simply going second.
const Statement kModelRegistryLock{"model_registry_lock", R"sql(
SELECT pg_advisory_xact_lock($1))sql"};

const Statement kModelRetireProduction{"model_retire_production", R"sql(
UPDATE models SET status = 'retired', retired_at = now()
WHERE status = 'production' AND version <> $1)sql"};

const Statement kModelSetProduction{"model_set_production", R"sql(
UPDATE models SET status = 'production', promoted_at = now(), retired_at = NULL
WHERE version = $1
RETURNING version, kind, sha256, path, metrics::text, status,
          (extract(epoch FROM created_at) * 1000000)::bigint,
          (extract(epoch FROM promoted_at) * 1000000)::bigint,
          (extract(epoch FROM retired_at) * 1000000)::bigint)sql"};

const Statement kModelRetire{"model_retire", R"sql(
UPDATE models SET status = 'retired', retired_at = now() WHERE version = $1
RETURNING version, kind, sha256, path, metrics::text, status,
          (extract(epoch FROM created_at) * 1000000)::bigint,
          (extract(epoch FROM promoted_at) * 1000000)::bigint,
          (extract(epoch FROM retired_at) * 1000000)::bigint)sql"};

// ---- training_runs --------------------------------------------------------------------
// Columns: id, agent, env, status, config, metrics, git_revision, checkpoint_path,
// model_version, started_us, finished_us.

const Statement kRunInsert{"run_insert", R"sql(
INSERT INTO training_runs (id, agent, env, config, git_revision)
VALUES ($1, $2, $3, $4::jsonb, $5)
RETURNING id, agent, env, status, config::text, metrics::text, git_revision, checkpoint_path,
          model_version, (extract(epoch FROM started_at) * 1000000)::bigint,
          (extract(epoch FROM finished_at) * 1000000)::bigint)sql"};

const Statement kRunFinish{"run_finish", R"sql(
UPDATE training_runs
SET status = $2, metrics = $3::jsonb, checkpoint_path = $4, model_version = $5,
    finished_at = now()
WHERE id = $1
RETURNING id, agent, env, status, config::text, metrics::text, git_revision, checkpoint_path,
          model_version, (extract(epoch FROM started_at) * 1000000)::bigint,
          (extract(epoch FROM finished_at) * 1000000)::bigint)sql"};

const Statement kRunById{"run_by_id", R"sql(
SELECT id, agent, env, status, config::text, metrics::text, git_revision, checkpoint_path,
       model_version, (extract(epoch FROM started_at) * 1000000)::bigint,
       (extract(epoch FROM finished_at) * 1000000)::bigint
FROM training_runs WHERE id = $1)sql"};

const Statement kRunsRecent{"runs_recent", R"sql(
SELECT id, agent, env, status, config::text, metrics::text, git_revision, checkpoint_path,
       model_version, (extract(epoch FROM started_at) * 1000000)::bigint,
       (extract(epoch FROM finished_at) * 1000000)::bigint
FROM training_runs ORDER BY started_at DESC, id LIMIT $1)sql"};

// ---- eval_reports ---------------------------------------------------------------------
// Columns: id, model_version, method, report, created_us.

const Statement kReportInsert{"report_insert", R"sql(
INSERT INTO eval_reports (model_version, method, report) VALUES ($1, $2, $3::jsonb)
RETURNING id, model_version, method, report::text,
          (extract(epoch FROM created_at) * 1000000)::bigint)sql"};

const Statement kReportById{"report_by_id", R"sql(
SELECT id, model_version, method, report::text,
       (extract(epoch FROM created_at) * 1000000)::bigint
FROM eval_reports WHERE id = $1)sql"};

const Statement kReportsForModel{"reports_for_model", R"sql(
SELECT id, model_version, method, report::text,
       (extract(epoch FROM created_at) * 1000000)::bigint
FROM eval_reports WHERE model_version = $1 ORDER BY created_at DESC, id DESC)sql"};

// ---- the learning log (learning_log.hpp) -----------------------------------------------
// The scan's cursor query reads its range from transaction-local settings that
// kLearningScanSettings sets first ($1..$4 as text: from_us, to_us, reward_wait_us,
// next_wait_us): a cursor is DECLAREd with text that cannot carry parameters, and this keeps
// that text a constant. Columns: the 16 of a decision (as kDecisionById), then the feedback
// summary (events, accepted, eaten, rejected, skipped, rating, reward, meal_id), the next
// decision (event_id, decided_us) and the first meal logged against the decision (meal_id,
// servings).
const Statement kLearningScanSettings{"learning_scan_settings", R"sql(
SELECT set_config('forkcast.scan_from_us', $1, true), set_config('forkcast.scan_to_us', $2, true),
       set_config('forkcast.scan_reward_wait_us', $3, true), set_config('forkcast.scan_next_wait_us', $4, true))sql"};

const char* const kLearningScanQuery = R"sql(
SELECT d.event_id::text, d.user_id::text, (extract(epoch FROM d.decided_at) * 1000000)::bigint,
       d.slot, d.model_version, d.policy, d.epsilon, to_json(d.candidates)::text, to_json(d.scores)::text,
       to_json(d.probabilities)::text, d.chosen, to_json(d.ranked)::text, to_json(d.state_features)::text,
       to_json(d.candidate_features)::text, d.candidate_feature_dim, d.context::text,
       f.events, f.accepted, f.eaten, f.rejected, f.skipped, f.rating, f.reward, f.meal_id,
       n.event_id::text, (extract(epoch FROM n.decided_at) * 1000000)::bigint, m.meal_id, m.servings
FROM decisions d
CROSS JOIN LATERAL (
  SELECT count(*) AS events,
         coalesce(bool_or(fb.outcome = 'accepted'), false) AS accepted,
         coalesce(bool_or(fb.outcome = 'eaten'), false) AS eaten,
         coalesce(bool_or(fb.outcome = 'rejected'), false) AS rejected,
         coalesce(bool_or(fb.outcome = 'skipped'), false) AS skipped,
         (array_agg(fb.rating ORDER BY fb.received_at DESC, fb.id DESC) FILTER (WHERE fb.rating IS NOT NULL))[1] AS rating,
         sum(fb.reward) AS reward,
         (array_agg(fb.meal_id ORDER BY fb.received_at, fb.id) FILTER (WHERE fb.outcome IN ('accepted', 'eaten')))[1]
           AS meal_id
  FROM feedback fb
  WHERE fb.event_id = d.event_id
    AND fb.received_at < d.decided_at + current_setting('forkcast.scan_reward_wait_us')::bigint * interval '1 microsecond'
) f
LEFT JOIN LATERAL (
  SELECT d2.event_id, d2.decided_at FROM decisions d2
  WHERE d2.user_id = d.user_id AND d2.decided_at >= d.decided_at AND (d2.decided_at, d2.event_id) > (d.decided_at, d.event_id)
  ORDER BY d2.decided_at, d2.event_id LIMIT 1
) n ON n.decided_at < d.decided_at + current_setting('forkcast.scan_next_wait_us')::bigint * interval '1 microsecond'
LEFT JOIN LATERAL (
  SELECT ml.meal_id, ml.servings FROM meal_log ml WHERE ml.event_id = d.event_id ORDER BY ml.eaten_at, ml.id LIMIT 1
) m ON true
WHERE d.decided_at >= timestamptz 'epoch' + current_setting('forkcast.scan_from_us')::bigint * interval '1 microsecond'
  AND d.decided_at < timestamptz 'epoch' + current_setting('forkcast.scan_to_us')::bigint * interval '1 microsecond'
ORDER BY d.decided_at, d.event_id)sql";

const Statement kNewestDecision{"newest_decision", R"sql(
SELECT (extract(epoch FROM max(decided_at)) * 1000000)::bigint FROM decisions)sql"};

const Statement kModelReject{"model_reject", R"sql(
UPDATE models SET status = 'rejected' WHERE version = $1 AND status = 'candidate' RETURNING version)sql"};

// Columns: id, learner, from_us (NULL), before_us, outcome, model_version (NULL), reason,
// stats, finished_us.
const Statement kCycleInsert{"cycle_insert", R"sql(
INSERT INTO learner_cycles (learner, decided_from, decided_before, outcome, model_version, reason, stats)
VALUES ($1, timestamptz 'epoch' + $2::bigint * interval '1 microsecond',
        timestamptz 'epoch' + $3::bigint * interval '1 microsecond', $4, $5, $6, $7::jsonb)
RETURNING id)sql"};

const Statement kCyclesOfLearner{"cycles_of_learner", R"sql(
SELECT id, learner, (extract(epoch FROM decided_from) * 1000000)::bigint,
       (extract(epoch FROM decided_before) * 1000000)::bigint, outcome, model_version, reason, stats::text,
       (extract(epoch FROM finished_at) * 1000000)::bigint
FROM learner_cycles WHERE learner = $1 ORDER BY id)sql"};

const Statement kWatermarkGet{"watermark_get", R"sql(
SELECT (extract(epoch FROM decided_before) * 1000000)::bigint FROM learner_watermarks WHERE learner = $1)sql"};

// Compare-and-set: the first cycle inserts (and finds a row there if another was first);
// later ones update only where the stored mark is the one they started from.
const Statement kWatermarkInsert{"watermark_insert", R"sql(
INSERT INTO learner_watermarks (learner, decided_before, cycles)
VALUES ($1, timestamptz 'epoch' + $2::bigint * interval '1 microsecond', 1)
ON CONFLICT (learner) DO NOTHING RETURNING learner)sql"};

const Statement kWatermarkAdvance{"watermark_advance", R"sql(
UPDATE learner_watermarks
SET decided_before = timestamptz 'epoch' + $3::bigint * interval '1 microsecond', cycles = cycles + 1, updated_at = now()
WHERE learner = $1 AND decided_before = timestamptz 'epoch' + $2::bigint * interval '1 microsecond'
RETURNING learner)sql"};

const Statement kLearnerTryLock{"learner_try_lock", R"sql(
SELECT pg_try_advisory_lock(1718775145, hashtext($1)))sql"};

const Statement* const kAll[] = {
    &kUserInsert,
    &kUserById,
    &kUserByToken,
    &kUserUpdateProfile,
    &kUserExists,
    &kStateUpsert,
    &kStateInsertNew,
    &kStateUpdateVersion,
    &kStateGet,
    &kStateLatest,
    &kDecisionInsert,
    &kDecisionInsertBatch,
    &kDecisionById,
    &kDecisionCountForUser,
    &kDecisionsForUser,
    &kDecisionsBetween,
    &kFeedbackWriteBatch,
    &kFeedbackByKey,
    &kFeedbackForEvent,
    &kMealLogInsert,
    &kMealLogByKey,
    &kMealLogForUser,
    &kModelInsert,
    &kModelByVersion,
    &kModelsAll,
    &kModelProduction,
    &kModelRegistryLock,
    &kModelRetireProduction,
    &kModelSetProduction,
    &kModelRetire,
    &kNewestDecision,
    &kModelReject,
    &kCycleInsert,
    &kCyclesOfLearner,
    &kRunInsert,
    &kRunFinish,
    &kRunById,
    &kRunsRecent,
    &kReportInsert,
    &kReportById,
    &kReportsForModel,
    &kLearningScanSettings,
    &kWatermarkGet,
    &kWatermarkInsert,
    &kWatermarkAdvance,
};
const int kAllCount = static_cast<int>(sizeof kAll / sizeof kAll[0]);

}  // namespace forkcast::db::sql
