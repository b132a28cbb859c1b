-- A worker gives back the job it reserved (see go_on in lib.lua) because its running job turned
-- out long: the reserved job goes back to the front of its queue, for any worker to start.
-- ARGV: worker, id, queue, now_iso. Returns 1, or 0 when the job was no longer reserved there.
local worker, id, queue, now_iso = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('LREM', active_key(worker), 1, id) == 0 then return 0 end
release_slot(id, hget(id, 'jobctl_slot'))  -- a reservation of a limited job held one
-- It kept waiting all along: it keeps its enqueued_at, whose age is the queue's latency (a fresh
-- one at the head hid how long the queue's jobs wait from status and from autoscaling).
if hget(id, 'status') == 'queued' then push_queued(id, queue, hget(id, 'enqueued_at') or now_iso, true) end
return 1
