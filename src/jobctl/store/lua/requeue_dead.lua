--[[ Bring dead jobs back to their queues with a fresh retry budget, and put back the dependents
  their deaths canceled, unless another parent still dooms them. Idempotent: a job that is no
  longer dead is left alone, and so is a record without a queue (another tool's), checked before
  anything is written for it. A unique job (or dependent) takes its claim again; while a copy
  enqueued after it ended is active, it stays as it is (two active copies is what unique refuses).
  Input:
    KEYS[1] 'rq:job:' prefix: the jobs' hashes, their dependents' and those parents'
    KEYS[2] 'rq:queue:' prefix, KEYS[3] 'rq:failed:' prefix, KEYS[4] 'rq:canceled:' prefix,
      KEYS[5] 'rq:deferred:' prefix: the list and registries of each job's queue and each
      dependent's, read from their records
    KEYS[6] 'rq:queues' set of known queues
    KEYS[7] 'jobctl:unique:' prefix: uniqueness claims
    KEYS[8] 'jobctl:batch:' prefix: batches' hashes and failed sets
    KEYS[9] 'jobctl:outbox' list of entries for other slots (a cluster's: a job of a batch is back,
      and dependents on other queues that a death canceled come back: lib.lua, revive_dependents)
    ARGV[1] now_iso
    ARGV[2] 'jobctl:wake:' prefix of queues' wake channels
    ARGV[3...] job ids
  Output:
    {id, ...} the ids requeued
]]
--- @include "lib"
local now_iso = ARGV[1]
local k = {job = KEYS[1], queue = KEYS[2], failed = KEYS[3], canceled = KEYS[4], deferred = KEYS[5],
  queues = KEYS[6], unique = KEYS[7], batch = KEYS[8], outbox = KEYS[9],
  wake = ARGV[2]}
local requeued = {}
for index = 3, #ARGV do
  local id = ARGV[index]
  local queue = hget(k, id, 'origin')
  if hget(k, id, 'status') == 'failed' and queue and reclaim(k, id) then
    local key = job_key(k, id)
    redis.call('ZREM', queue_key(k, 'failed', queue), id)
    redis.call('PERSIST', key)
    redis.call('HSET', key, 'jobctl_attempts', 0, 'jobctl_crashes', 0, 'ended_at', '')
    redis.call('HDEL', key, 'jobctl_reason', 'jobctl_dead', 'jobctl_progress', 'jobctl_progress_message')
    -- RQ's Retry budget too (start_next kept it)
    local retries = hget(k, id, 'jobctl_retries')
    if retries then redis.call('HSET', key, 'retries_left', retries) end
    push_queued(k, id, queue, now_iso, false)
    batch_reopened(k, id)

    revive_dependents(k, id)
    table.insert(requeued, id)
  end
end
return requeued
