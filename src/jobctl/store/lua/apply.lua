--[[ Apply one outbox entry on the slot it is for (a Redis Cluster's; the promoter, transitions.py's
  deliver): a job of another queue starts waiting on a parent here ('link'), a parent of
  another queue ended and a job here hears of it ('settle'), or came back from the dead and a
  job here its death canceled comes back ('revive'; apply_entry in lib.lua). Applied again, an
  entry changes nothing.
  Input:
    KEYS[1] 'rq:job:' prefix: the hashes and dependency sets of the jobs named, their dependents'
    KEYS[2] the queue's list, KEYS[3] its scheduled set, KEYS[4] its deferred set, KEYS[5] its
      canceled registry
    KEYS[6] the queue's list again, where one Redis has RQ's set of known queues (left alone)
    KEYS[7] 'jobctl:unique:' prefix: uniqueness claims of canceled jobs
    KEYS[8] 'jobctl:slots:' prefix: concurrency slots
    KEYS[9] 'jobctl:batch:' prefix: batches' hashes and failed sets,
      KEYS[10] 'jobctl:batches-due' set of batch callbacks due
    KEYS[11] 'jobctl:outbox' list of entries for other queues' slots: of this slot
    ARGV[1] the entry (JSON: kind, job, queue, parent, parent_queue, status)
    ARGV[2] now (unix time)
    ARGV[3] now_iso
    ARGV[4] 'jobctl:wake:' prefix of queues' wake channels
  Output:
    1 the entry changed something, 0 it was applied before (or is no entry: nothing written)
]]
--- @include "lib"
local k = {job = KEYS[1], queue = KEYS[2], scheduled = KEYS[3], deferred = KEYS[4], canceled = KEYS[5],
  queues = KEYS[6], unique = KEYS[7], slots = KEYS[8], batch = KEYS[9], batches_due = KEYS[10], outbox = KEYS[11],
  wake = ARGV[4]}
local ok, entry = pcall(cjson.decode, ARGV[1])
if not ok or type(entry) ~= 'table' or type(entry.job) ~= 'string' or type(entry.parent) ~= 'string'
  or type(entry.queue) ~= 'string' or type(entry.parent_queue) ~= 'string' then
  return 0
end
return apply_entry(k, entry, tonumber(ARGV[2]), ARGV[3])
