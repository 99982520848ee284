-- From sql/085_api_budget.sql
-- The daily request budget of remote services (e.g. a community API quota), shared by every run.

CREATE TABLE ipintel.api_budget (
    source  text   NOT NULL,
    day     date   NOT NULL,
    used    bigint NOT NULL DEFAULT 0,
    CONSTRAINT api_budget_pkey PRIMARY KEY (source, day),
    CONSTRAINT api_budget_source_fkey FOREIGN KEY (source) REFERENCES ipintel.enrichment_policy (source),
    CONSTRAINT api_budget_used_is_not_negative CHECK (used >= 0)
);
COMMENT ON TABLE ipintel.api_budget IS
    'Lookups spent per source and UTC day, shared by every run, so two runs on one day share the daily budget.';
COMMENT ON COLUMN ipintel.api_budget.used IS 'Lookups granted so far this UTC day.';
COMMENT ON COLUMN ipintel.api_budget.source IS 'Source whose lookups are counted (enrichment_policy), e.g. greynoise.';
COMMENT ON COLUMN ipintel.api_budget.day IS 'UTC day.';

CREATE FUNCTION ipintel.spend_budget(p_source text, p_want bigint, p_daily_limit bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_used bigint;
    v_granted bigint;
BEGIN
    INSERT INTO ipintel.api_budget (source, day, used)
    VALUES (p_source, (now() AT TIME ZONE 'UTC')::date, 0)
    ON CONFLICT (source, day) DO NOTHING;
    -- The row lock serialises concurrent runs: together they never exceed the limit.
    SELECT b.used INTO v_used FROM ipintel.api_budget b
    WHERE b.source = p_source AND b.day = (now() AT TIME ZONE 'UTC')::date
    FOR UPDATE;
    v_granted := least(p_want, greatest(p_daily_limit - v_used, 0));
    UPDATE ipintel.api_budget b SET used = b.used + v_granted
    WHERE b.source = p_source AND b.day = (now() AT TIME ZONE 'UTC')::date;
    RETURN v_granted;
END;
$$;
COMMENT ON FUNCTION ipintel.spend_budget(text, bigint, bigint) IS
    'Grants up to p_want lookups from today''s (UTC) budget of p_daily_limit for a source and records them; returns how many were granted (0 when spent).';
