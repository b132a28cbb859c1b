--[[ Queue a scheduled job (delayed, or waiting for its retry) now, ahead of its time.
  Input:
    KEYS[1] 'rq:job:' prefix: the job's hash
    KEYS[2] 'rq:queue:' prefix, KEYS[3] 'rq:scheduled:' prefix: the list and scheduled set of the
      job's queue, read from its record
    KEYS[4] 'rq:queues' set of known queues
    ARGV[1] job id
    ARGV[2] now_iso
    ARGV[3] 'jobctl:wake:' prefix of queues' wake channels
  Output:
    1 the job was queued
    0 it was not scheduled: nothing written
]]
--- @include "lib"
local id, now_iso = ARGV[1], ARGV[2]
local k = {job = KEYS[1], queue = KEYS[2], scheduled = KEYS[3], queues = KEYS[4], wake = ARGV[3]}
if hget(k, id, 'status') ~= 'scheduled' then return 0 end
local queue = hget(k, id, 'origin')
redis.call('ZREM', queue_key(k, 'scheduled', queue), id)
push_queued(k, id, queue, now_iso, false)
return 1
