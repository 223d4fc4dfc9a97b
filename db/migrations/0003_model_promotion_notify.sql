-- Every promotion is announced on the channel forkcast_model_promoted, with the version as
-- the payload (docs/database.md "Promotion broadcast").
--
-- Why a trigger and not a pg_notify in ModelRepository::promote: every path that makes a
-- model production — the admin route, `forkcast models promote`, the learner, a hand-written
-- UPDATE — is then announced, as the single-production index holds whatever the client.
-- PostgreSQL delivers a notification only when its transaction commits, so a listener never
-- hears of a promotion that was rolled back; a listener that was disconnected hears nothing,
-- which is why db::RegistryWatch also checks the registry on a timer.
CREATE FUNCTION forkcast_announce_promotion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('forkcast_model_promoted', NEW.version);
  RETURN NULL;
END
$$;

CREATE TRIGGER models_announce_promotion
  AFTER INSERT OR UPDATE OF status ON models
  FOR EACH ROW WHEN (NEW.status = 'production')
  EXECUTE FUNCTION forkcast_announce_promotion();
