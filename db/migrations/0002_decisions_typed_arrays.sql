-- Decisions store their lists as typed arrays instead of jsonb.
--
-- Why: every recommendation writes one decision row with ~90 candidates, their scores and
-- probabilities and ~80 state features. As jsonb, PostgreSQL parsed each number into a
-- numeric and compressed the ~5 kB document: ~100 us of server CPU per decision, more than
-- the whole recommendation costs in the service, so under load the decision log fell
-- behind (docs/performance.md, "The REST service"). As arrays of real / double precision /
-- text the repository sends them in PostgreSQL's binary format: nothing is parsed, rows are
-- ~40 % smaller, and SQL can still read them (unnest, array indexing, to_json).
--
-- Scores and features are float32 in the policy, so real keeps all they carry;
-- probabilities stay double precision (they must sum to 1 for off-policy evaluation).

CREATE FUNCTION pg_temp.forkcast_text_array(j jsonb) RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(array_agg(e ORDER BY i), '{}') FROM jsonb_array_elements_text(j) WITH ORDINALITY AS t(e, i)
$$;
CREATE FUNCTION pg_temp.forkcast_real_array(j jsonb) RETURNS real[] LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(array_agg(e::real ORDER BY i), '{}') FROM jsonb_array_elements_text(j) WITH ORDINALITY AS t(e, i)
$$;
CREATE FUNCTION pg_temp.forkcast_double_array(j jsonb) RETURNS double precision[] LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(array_agg(e::double precision ORDER BY i), '{}')
  FROM jsonb_array_elements_text(j) WITH ORDINALITY AS t(e, i)
$$;

-- The shape checks of 0001 are written for jsonb; they are replaced below.
ALTER TABLE decisions
  DROP CONSTRAINT decisions_candidates_check,
  DROP CONSTRAINT decisions_check,
  DROP CONSTRAINT decisions_check1,
  DROP CONSTRAINT decisions_check2,
  DROP CONSTRAINT decisions_ranked_check,
  DROP CONSTRAINT decisions_state_features_check,
  DROP CONSTRAINT decisions_check3;

ALTER TABLE decisions
  ALTER COLUMN candidates TYPE text[] USING pg_temp.forkcast_text_array(candidates),
  ALTER COLUMN scores TYPE real[] USING pg_temp.forkcast_real_array(scores),
  ALTER COLUMN probabilities TYPE double precision[] USING pg_temp.forkcast_double_array(probabilities),
  ALTER COLUMN ranked TYPE text[] USING pg_temp.forkcast_text_array(ranked),
  ALTER COLUMN state_features TYPE real[] USING pg_temp.forkcast_real_array(state_features),
  ALTER COLUMN candidate_features TYPE real[] USING
    CASE WHEN candidate_features IS NULL THEN NULL ELSE pg_temp.forkcast_real_array(candidate_features) END;

ALTER TABLE decisions
  ADD CONSTRAINT decisions_candidates_shape CHECK (
    array_ndims(candidates) = 1 AND cardinality(candidates) > 0 AND array_position(candidates, NULL) IS NULL),
  ADD CONSTRAINT decisions_scores_shape CHECK (
    array_ndims(scores) = 1 AND cardinality(scores) = cardinality(candidates) AND array_position(scores, NULL) IS NULL),
  ADD CONSTRAINT decisions_probabilities_shape CHECK (
    array_ndims(probabilities) = 1 AND cardinality(probabilities) = cardinality(candidates)
    AND array_position(probabilities, NULL) IS NULL),
  ADD CONSTRAINT decisions_chosen_is_candidate CHECK (chosen = ANY (candidates)),
  ADD CONSTRAINT decisions_ranked_shape CHECK (
    array_ndims(ranked) = 1 AND cardinality(ranked) > 0 AND array_position(ranked, NULL) IS NULL),
  ADD CONSTRAINT decisions_state_features_shape CHECK (
    (cardinality(state_features) = 0 OR array_ndims(state_features) = 1)
    AND array_position(state_features, NULL) IS NULL),
  ADD CONSTRAINT decisions_candidate_features_shape CHECK (
    candidate_features IS NULL
    OR (cardinality(candidate_features) = cardinality(candidates) * candidate_feature_dim
        AND array_position(candidate_features, NULL) IS NULL));

-- A decision row is ~2.5 kB. Above the default toast_tuple_target (~2 kB) PostgreSQL would
-- try to compress its arrays (pglz) on every insert, which costs more CPU than the insert;
-- rows up to a page are stored as they are.
ALTER TABLE decisions SET (toast_tuple_target = 8160);
