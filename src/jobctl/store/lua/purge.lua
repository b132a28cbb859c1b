-- Delete ended jobs from one registry: each job's hash, its results stream and dependency sets,
-- and its registry entry, when it ended at or before the cutoff. A registry's score is the
-- job's expiry time (ended + its ttl: result_ttl for finished jobs, failure_ttl for dead and
-- canceled ones, see succeed.lua and bury/cancel in lib.lua), so the job ended at score - ttl.
-- Each id is checked here, atomically, so a job requeued or re-enqueued meanwhile is kept.
-- ARGV: queue, registry ('finished'|'failed'|'canceled'), cutoff, dry_run ('1'|'0'), id...
-- Returns how many jobs were (or, in a dry run, would be) deleted.
local queue, registry, cutoff, dry_run = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local registry_key = ended_key(registry, queue)
local ttl_field, default_ttl = 'failure_ttl', FAILURE_TTL
if registry == 'finished' then ttl_field, default_ttl = 'result_ttl', RQ_RESULT_TTL end
local deleted = 0
for i = 5, #ARGV do
  local id = ARGV[i]
  local score = tonumber(redis.call('ZSCORE', registry_key, id))
  local status = hget(id, 'status')
  -- an entry whose job expired is garbage whatever its age; one whose job moved on is not ours
  if score and (not status or status == registry) then
    local ttl = finite(hget(id, ttl_field)) or default_ttl
    if not status or score - ttl <= cutoff then
      if not dry_run then
        redis.call('ZREM', registry_key, id)
        delete_job(id)
      end
      deleted = deleted + 1
    end
  end
end
return deleted
