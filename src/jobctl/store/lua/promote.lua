--[[ Queue the scheduled jobs (delayed, or waiting for a retry) whose time has come, on every queue
  jobctl knows, and adopt the deferred jobs RQ's own API stored (adopt_deferred in lib.lua). One
  supervisor at a time does it (the promoter: a lease renewed on each call), so promotion does
  not multiply with the number of supervisors; the others only try to take the lease over now
  and then, and do when its holder is gone. Every queue in one call: the queues are read from
  KEYS[2], so their keys are built from prefixes.
  Input:
    KEYS[1] the promoter lease
    KEYS[2] 'rq:queues' set of known queues (queue list keys)
    KEYS[3] 'rq:job:' prefix: the hashes of the jobs moved, settled or canceled
    KEYS[4] 'rq:queue:' prefix, KEYS[5] 'rq:scheduled:' prefix, KEYS[6] 'rq:deferred:' prefix,
      KEYS[7] 'rq:canceled:' prefix: each known queue's list and registries
    KEYS[8] 'jobctl:unique:' prefix: uniqueness claims of canceled dependents
    KEYS[9] 'jobctl:slots:' prefix: concurrency slots
    KEYS[10] 'jobctl:batch:' prefix: batches' hashes and failed sets,
      KEYS[11] 'jobctl:batches-due' set of batch callbacks due
    KEYS[12] 'jobctl:outbox' list of entries for other queues' slots (a Redis Cluster's; lib.lua, outbox)
    ARGV[1] supervisor
    ARGV[2] lease_ms (0: give the lease up, as a stopping supervisor does)
    ARGV[3] now (unix time)
    ARGV[4] now_iso
    ARGV[5] 'jobctl:wake:' prefix of queues' wake channels
    ARGV[6] on a Redis Cluster, the one queue to promote (the keys given are its own there: keys.Layout)
  Output:
    moved how many jobs were queued
    Refusal.NOT_PROMOTER another supervisor holds the lease: nothing written
]]
--- @include "lib"
local me, lease_ms, now, now_iso = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local k = {promoter = KEYS[1], queues = KEYS[2], job = KEYS[3], queue = KEYS[4], scheduled = KEYS[5],
  deferred = KEYS[6], canceled = KEYS[7], unique = KEYS[8], slots = KEYS[9], batch = KEYS[10],
  batches_due = KEYS[11], outbox = KEYS[12], wake = ARGV[5]}
local holder = redis.call('GET', k.promoter)
if holder and holder ~= me then return Refusal.NOT_PROMOTER end
if lease_ms == '0' then
  if holder then redis.call('DEL', k.promoter) end
  return 0
end
redis.call('SET', k.promoter, me, 'PX', lease_ms)
local moved = 0
-- on a cluster a call promotes the one queue whose slot it runs on: RQ's set of known queues is in
-- no queue's slot, and the caller reads it
local queues = {ARGV[6]}
if not CLUSTER then
  queues = {}
  for _, member in ipairs(redis.call('SMEMBERS', k.queues)) do table.insert(queues, string.sub(member, #k.queue + 1)) end
end
for _, queue in ipairs(queues) do
  local scheduled = queue_key(k, 'scheduled', queue)
  local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    redis.call('ZREM', scheduled, id)
    if hget(k, id, 'status') == 'scheduled' then
      push_queued(k, id, queue, now_iso, false)
      moved = moved + 1
    end
  end
  adopt_deferred(k, queue, now, now_iso)
end
return moved
