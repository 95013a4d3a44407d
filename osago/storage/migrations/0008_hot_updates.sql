-- Fewer index writes per calculation (measured at calm 40/s: about 107 row writes and 14
-- non-HOT updates of exchanges per calculation).
--
-- An exchange is updated two or three times (its submission, its outcome with its steps)
-- and a calculation about ten (each settle bumps event_seq); none of those columns is
-- indexed, so each update can be HOT (no index entry written) when the row's page has room
-- for the new version. At the default fillfactor (100) pages are packed full and 45 % of the
-- exchanges' updates were not HOT. Leave room: HOT updates of exchanges at calm 40/s were
-- 55 % at 100, 75 % at 60 and 82 % at 40 (steps written apart); 72 % at 60 and 78 % at 40
-- with the steps written with the outcome. 60 takes most of it; its heap is up to 1.7 times
-- as large when first written (2.5 at 40), before the updates that would bloat it anyway.
-- (Takes effect for pages written from now on.)
ALTER TABLE exchanges SET (fillfactor = 60);
ALTER TABLE calculations SET (fillfactor = 70);
-- Every outbox row was entered in four indexes. This one is covered by
-- outbox_by_calculation (0006): its only reader, a completion's flush of a calculation's
-- unsent events, reads that calculation's few rows either way.
DROP INDEX outbox_unsent_by_calculation;
