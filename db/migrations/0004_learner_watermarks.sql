-- The learning loop's progress (docs/learning-loop.md "Watermark"): per learner, every
-- decision decided before `decided_before` has been consumed by a finished cycle. A cycle
-- reads [decided_before, now - reward wait) and moves the mark with compare-and-set
-- (db::LearningLog::advance_watermark), so two learners, or a learner killed and run again,
-- neither skip nor repeat a decision.
CREATE TABLE learner_watermarks (
  learner        text PRIMARY KEY CHECK (learner ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  decided_before timestamptz NOT NULL,
  cycles         bigint NOT NULL DEFAULT 0 CHECK (cycles >= 0),
  updated_at     timestamptz NOT NULL DEFAULT now()
);

-- The scan reads each decision's feedback by event (feedback_event) and the user's next
-- decision by (user_id, decided_at) (decisions_user_time), both indexed already, and the
-- meal logged against a decision (what the user ate instead of, or as, the suggestion):
CREATE INDEX meal_log_event ON meal_log (event_id) WHERE event_id IS NOT NULL;
