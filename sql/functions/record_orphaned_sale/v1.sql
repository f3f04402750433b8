-- function: record_orphaned_sale
-- version: 1
-- released in: bar_016 (bar-observability)
-- immutable: a released version is never edited; a new version is a new file.
--
-- Trigger function of sales_orphaned_sale_record (AFTER INSERT ON sales, only for rows
-- inserted with server_id NULL): when the sale's bar was in simplified mode
-- (bars.settings->>'operatingMode' = 'simplified') and ENABLE_SWITCHING_MODE was on for
-- it (switching_mode_enabled()) at that moment, the sale should have had a server (seed
-- 002: "Orphaned sales created > 0 (server_id = NULL when should not be)") and one row of
-- orphaned_sales records it, with the state it was created in. Any writer is seen: the
-- app's direct INSERT under the policies, psql, a script. The state is read when the row
-- is inserted, so a later mode or flag change neither adds nor removes a record.
-- SECURITY DEFINER: the writer (authenticated) may not read feature_flags nor write
-- orphaned_sales.

CREATE OR REPLACE FUNCTION public.record_orphaned_sale()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF public.switching_mode_enabled(NEW.bar_id)
       AND EXISTS (SELECT 1 FROM public.bars AS b
                   WHERE b.id = NEW.bar_id AND b.settings ->> 'operatingMode' = 'simplified') THEN
        INSERT INTO public.orphaned_sales (sale_id, bar_id, created_by, server_name, created_at)
        VALUES (NEW.id, NEW.bar_id, NEW.created_by, NEW.server_name, NEW.created_at);
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION public.record_orphaned_sale() IS 'venuedb:version=1';
