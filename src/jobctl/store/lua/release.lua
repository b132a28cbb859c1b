--[[ A worker gives back the job it reserved (see go_on in lib.lua) because its running job turned
  out long: the reserved job goes back to the front of its queue, for any worker to start.
  Input:
    KEYS[1] the worker's in-flight list
    KEYS[2] the job's queue list (of ARGV[2])
    KEYS[3] 'rq:job:' prefix: the job's hash
    KEYS[4] 'jobctl:slots:' prefix: concurrency slots
    KEYS[5] 'rq:queues' set of known queues
    ARGV[1] job id
    ARGV[2] queue
    ARGV[3] now_iso
    ARGV[4] 'jobctl:wake:' prefix of queues' wake channels
  Output:
    1 the job was given back
    0 the job was no longer reserved there: nothing written
]]
--- @include "lib"
local id, queue, now_iso = ARGV[1], ARGV[2], ARGV[3]
local k = {by_queue = {[queue] = {queue = KEYS[2]}}, job = KEYS[3], slots = KEYS[4], queues = KEYS[5], wake = ARGV[4]}
if redis.call('LREM', KEYS[1], 1, id) == 0 then return 0 end
release_slot(k, id, hget(k, id, 'jobctl_slot'))  -- a reservation of a limited job held one
-- It kept waiting all along: it keeps its enqueued_at, whose age is the queue's latency (a fresh
-- one at the head hid how long the queue's jobs wait from status and from autoscaling).
if hget(k, id, 'status') == 'queued' then push_queued(k, id, queue, hget(k, id, 'enqueued_at') or now_iso, true) end
return 1
