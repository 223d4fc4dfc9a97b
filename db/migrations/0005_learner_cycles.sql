-- The learning loop's registry rows (docs/learning-loop.md "The gate"): a model the gate
-- refused stays registered as 'rejected' (never served; the reason is in its metrics and in
-- its cycle's row), and every cycle a learner finishes leaves one row here, committed in the
-- same transaction as its watermark and its model, so a learner killed mid-cycle leaves
-- neither a model nor a cycle behind.
ALTER TABLE models DROP CONSTRAINT models_status_check;
ALTER TABLE models ADD CONSTRAINT models_status_check
  CHECK (status IN ('candidate', 'production', 'retired', 'rejected'));

CREATE TABLE learner_cycles (
  id             bigserial PRIMARY KEY,
  learner        text NOT NULL CHECK (learner ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  decided_from   timestamptz,            -- NULL: the learner's first cycle (from the start of the log)
  decided_before timestamptz NOT NULL,
  outcome        text NOT NULL CHECK (outcome IN ('promoted', 'rejected', 'no_model')),
  model_version  text REFERENCES models (version),
  reason         text NOT NULL,
  stats          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(stats) = 'object'),
  finished_at    timestamptz NOT NULL DEFAULT now(),
  CHECK ((outcome = 'no_model') = (model_version IS NULL))
);
CREATE INDEX learner_cycles_learner ON learner_cycles (learner, id);
