--[[ Delete ended jobs from one registry: each job's hash, its results stream and dependency sets,
  and its registry entry, when it ended at or before the cutoff. A registry's score is the
  job's expiry time (ended + its ttl: result_ttl for finished jobs, failure_ttl for dead and
  canceled ones, see succeed.lua and bury/cancel in lib.lua), so the job ended at score - ttl.
  Each id is checked here, atomically, so a job requeued or re-enqueued meanwhile is kept.
  Input:
    KEYS[1] the registry (keys.ended: the queue's finished, failed or canceled registry)
    KEYS[2] 'rq:job:' prefix: the jobs' hashes and dependency sets
    KEYS[3] 'rq:results:' prefix: their results streams
    ARGV[1] the registry's status ('finished'|'failed'|'canceled')
    ARGV[2] cutoff (unix time)
    ARGV[3] dry_run ('1'|'0')
    ARGV[4...] job ids
  Output:
    deleted how many jobs were (or, in a dry run, would be) deleted
]]
--- @include "lib"
local registry, cutoff, dry_run = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local k = {job = KEYS[2], results = KEYS[3]}
local registry_key = KEYS[1]
local ttl_field, default_ttl = 'failure_ttl', FAILURE_TTL
if registry == 'finished' then ttl_field, default_ttl = 'result_ttl', RQ_RESULT_TTL end
local deleted = 0
for i = 4, #ARGV do
  local id = ARGV[i]
  local score = tonumber(redis.call('ZSCORE', registry_key, id))
  local status = hget(k, id, 'status')
  -- an entry whose job expired is garbage whatever its age; one whose job moved on is not ours
  if score and (not status or status == registry) then
    local ttl = finite(hget(k, id, ttl_field)) or default_ttl
    if not status or score - ttl <= cutoff then
      if not dry_run then
        redis.call('ZREM', registry_key, id)
        delete_job(k, id)
      end
      deleted = deleted + 1
    end
  end
end
return deleted
