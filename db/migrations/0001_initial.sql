-- forkcast schema, version 1 (DESIGN.md §4; docs/database.md "Schema").
-- Applied in one transaction by db/src/migrations.cpp and recorded in schema_migrations.
-- Never edit this file once released: add 0002_<name>.sql instead (the recorded sha256
-- would no longer match and every forkcast binary would refuse the database).
--
-- Conventions: timestamps are timestamptz (UTC, microseconds); public ids of users and
-- decisions are random UUIDs (not guessable, no row counts leak); documents whose layout
-- belongs to another module (profiles, states, metrics, reports) are jsonb objects; lists
-- of numbers or meal ids are jsonb arrays, checked for shape here so that a bad row cannot
-- be written by any client.

CREATE TABLE users (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  profile      jsonb NOT NULL CHECK (jsonb_typeof(profile) = 'object'),
  -- sha256 of the bearer token, lowercase hex. The token itself is never stored.
  token_sha256 text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per user and calendar day: intake vs targets, hunger, satisfaction, recent
-- history. version makes concurrent read-modify-write cycles safe (compare and set).
CREATE TABLE user_state (
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  day        date NOT NULL,
  state      jsonb NOT NULL CHECK (jsonb_typeof(state) = 'object'),
  version    bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, day)
);

-- The model registry.
CREATE TABLE models (
  version     text PRIMARY KEY CHECK (version ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
  kind        text NOT NULL CHECK (kind <> ''),
  sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  path        text NOT NULL CHECK (path <> ''),
  metrics     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metrics) = 'object'),
  status      text NOT NULL DEFAULT 'candidate'
              CHECK (status IN ('candidate', 'production', 'retired')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  promoted_at timestamptz,
  retired_at  timestamptz
);
-- At most one production model, whatever the clients do: every row with status
-- 'production' has the same index key (true), so a second one is a unique violation.
CREATE UNIQUE INDEX models_single_production ON models ((true)) WHERE status = 'production';

-- One row per recommendation: everything off-policy evaluation needs (policy/ope.hpp).
CREATE TABLE decisions (
  event_id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id               uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  decided_at            timestamptz NOT NULL DEFAULT now(),
  slot                  text NOT NULL CHECK (slot IN ('breakfast', 'lunch', 'dinner', 'snack')),
  model_version         text NOT NULL CHECK (model_version <> ''),
  policy                text NOT NULL CHECK (policy <> ''),
  epsilon               double precision NOT NULL CHECK (epsilon >= 0 AND epsilon <= 1),
  candidates            jsonb NOT NULL,  -- meal ids the policy chose among
  scores                jsonb NOT NULL,  -- one number per candidate
  probabilities         jsonb NOT NULL,  -- one per candidate, summing to 1
  chosen                text NOT NULL,   -- the meal acted on (its propensity is logged)
  ranked                jsonb NOT NULL,  -- meals returned, in rank order
  state_features        jsonb NOT NULL,  -- the observation the policy saw
  candidate_features    jsonb,           -- optional, candidates x candidate_feature_dim
  candidate_feature_dim integer NOT NULL DEFAULT 0 CHECK (candidate_feature_dim >= 0),
  context               jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(context) = 'object'),
  CHECK (jsonb_typeof(candidates) = 'array' AND jsonb_array_length(candidates) > 0),
  CHECK (jsonb_typeof(scores) = 'array'
         AND jsonb_array_length(scores) = jsonb_array_length(candidates)),
  CHECK (jsonb_typeof(probabilities) = 'array'
         AND jsonb_array_length(probabilities) = jsonb_array_length(candidates)),
  CHECK (candidates ? chosen),
  CHECK (jsonb_typeof(ranked) = 'array' AND jsonb_array_length(ranked) > 0),
  CHECK (jsonb_typeof(state_features) = 'array'),
  CHECK (candidate_features IS NULL
         OR (jsonb_typeof(candidate_features) = 'array'
             AND jsonb_array_length(candidate_features)
                 = jsonb_array_length(candidates) * candidate_feature_dim))
);
CREATE INDEX decisions_user_time ON decisions (user_id, decided_at DESC);
CREATE INDEX decisions_time ON decisions (decided_at);

-- What the user did with a recommendation. idempotency_key makes client retries safe.
CREATE TABLE feedback (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id        uuid NOT NULL REFERENCES decisions (event_id) ON DELETE CASCADE,
  meal_id         text NOT NULL CHECK (meal_id <> ''),
  outcome         text NOT NULL CHECK (outcome IN ('accepted', 'rejected', 'eaten', 'skipped')),
  rating          smallint CHECK (rating BETWEEN 1 AND 5),
  reward          double precision CHECK (reward IS NULL OR reward BETWEEN -1e12 AND 1e12),
  idempotency_key text NOT NULL UNIQUE CHECK (octet_length(idempotency_key) BETWEEN 1 AND 255),
  received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feedback_event ON feedback (event_id);

-- Meals the user reports eating, suggested or not.
CREATE TABLE meal_log (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  meal_id         text NOT NULL CHECK (meal_id <> ''),
  slot            text NOT NULL CHECK (slot IN ('breakfast', 'lunch', 'dinner', 'snack')),
  eaten_at        timestamptz NOT NULL,
  servings        double precision NOT NULL DEFAULT 1 CHECK (servings > 0 AND servings <= 100),
  event_id        uuid REFERENCES decisions (event_id) ON DELETE SET NULL,
  idempotency_key text UNIQUE CHECK (octet_length(idempotency_key) BETWEEN 1 AND 255),
  logged_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX meal_log_user_time ON meal_log (user_id, eaten_at);

CREATE TABLE training_runs (
  id              text PRIMARY KEY CHECK (id <> ''),
  agent           text NOT NULL CHECK (agent <> ''),
  env             text NOT NULL CHECK (env <> ''),
  status          text NOT NULL DEFAULT 'running'
                  CHECK (status IN ('running', 'finished', 'failed', 'interrupted')),
  config          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
  metrics         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metrics) = 'object'),
  git_revision    text NOT NULL DEFAULT '',
  checkpoint_path text,
  model_version   text REFERENCES models (version) ON DELETE SET NULL,
  started_at      timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz,
  CHECK ((status = 'running') = (finished_at IS NULL))
);

-- Policy evaluation reports (simulator or off-policy). model_version may name a baseline
-- policy as well as a registered model, so it is not a foreign key.
CREATE TABLE eval_reports (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  model_version text NOT NULL CHECK (model_version <> ''),
  method        text NOT NULL CHECK (method <> ''),
  report        jsonb NOT NULL CHECK (jsonb_typeof(report) = 'object'),
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX eval_reports_model ON eval_reports (model_version, created_at DESC);
