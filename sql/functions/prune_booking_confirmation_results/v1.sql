-- function: prune_booking_confirmation_results (a procedure)
-- version: 1
-- released in: booking_006 (capacity-overlap)
-- immutable: a released version is never edited; a new version is a new file.
--
-- Retention for booking_confirmation_results (seed 003: "30-day retention policy").
-- Deletes rows checked before now() - p_older_than in batches of p_batch_size and
-- commits after each batch, so a large purge never holds locks or a snapshot for
-- long. CALL it outside an explicit transaction block (PostgreSQL refuses COMMIT in a
-- procedure called inside one): `CALL prune_booking_confirmation_results();`.
-- p_deleted returns the number of rows deleted.

CREATE OR REPLACE PROCEDURE public.prune_booking_confirmation_results(
    p_older_than interval DEFAULT interval '30 days',
    p_batch_size integer DEFAULT 5000,
    INOUT p_deleted bigint DEFAULT 0
)
LANGUAGE plpgsql
-- No SET search_path clause: PostgreSQL forbids COMMIT in a procedure that has one.
-- Every name below is schema-qualified instead.
AS $$
DECLARE
    v_batch integer;
BEGIN
    IF p_older_than IS NULL OR p_older_than < interval '0' THEN
        RAISE EXCEPTION 'p_older_than must be a non-negative interval, got %', p_older_than
            USING ERRCODE = '22023';
    END IF;
    IF p_batch_size IS NULL OR p_batch_size < 1 THEN
        RAISE EXCEPTION 'p_batch_size must be at least 1, got %', p_batch_size
            USING ERRCODE = '22023';
    END IF;
    p_deleted := 0;
    LOOP
        DELETE FROM public.booking_confirmation_results AS r
        WHERE r.id IN (
            SELECT o.id FROM public.booking_confirmation_results AS o
            WHERE o.checked_at < now() - p_older_than
            ORDER BY o.checked_at
            LIMIT p_batch_size
        );
        GET DIAGNOSTICS v_batch = ROW_COUNT;
        p_deleted := p_deleted + v_batch;
        EXIT WHEN v_batch < p_batch_size;
        COMMIT;
    END LOOP;
END;
$$;

COMMENT ON PROCEDURE public.prune_booking_confirmation_results (interval, integer, bigint)
IS 'venuedb:version=1';
