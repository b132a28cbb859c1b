--[[ Give back what a gone worker held (see recover_worker in lib.lua).
  Input:
    KEYS[1] the worker's hash
    KEYS[2] the worker's in-flight list
    KEYS[3] 'rq:job:' prefix: the hashes of its jobs and of their dependents
    KEYS[4] 'rq:results:' prefix: results streams (a buried job not kept is deleted)
    KEYS[5] 'rq:queue:' prefix, KEYS[6] 'rq:wip:' prefix, KEYS[7] 'rq:scheduled:' prefix,
      KEYS[8] 'rq:deferred:' prefix, KEYS[9] 'rq:failed:' prefix, KEYS[10] 'rq:canceled:' prefix:
      the lists and registries of its jobs' queues, read from their records
    KEYS[11] 'jobctl:unique:' prefix: uniqueness claims
    KEYS[12] 'jobctl:slots:' prefix: concurrency slots
    KEYS[13] 'jobctl:stats:job:' prefix, KEYS[14] 'jobctl:stats:queue:' prefix: stats hashes
    KEYS[15] 'rq:workers:' prefix: the worker sets of the queues the worker's hash names
    KEYS[16] 'rq:queues' set of known queues
    KEYS[17] 'rq:workers' set of worker hashes
    KEYS[18] 'jobctl:batch:' prefix: batches' hashes and failed sets,
      KEYS[19] 'jobctl:batches-due' set of batch callbacks due
    KEYS[20] 'jobctl:outbox' list of entries for other queues' slots (a Redis Cluster's; lib.lua, outbox)
    KEYS[21] 'jobctl:active-workers' set
    ARGV[1] worker
    ARGV[2] now (unix time)
    ARGV[3] now_iso
    ARGV[4] cause ('crash'|'shutdown')
    ARGV[5] crash_limit
    ARGV[6] how ('worker killed by signal 9 (SIGKILL)', ...)
    ARGV[7] 'jobctl:wake:' prefix of queues' wake channels
    ARGV[8...] culprit job ids
  Output:
    {requeued, buried}
]]
--- @include "lib"
local k = {job = KEYS[3], results = KEYS[4], queue = KEYS[5], started = KEYS[6], scheduled = KEYS[7],
  deferred = KEYS[8], failed = KEYS[9], canceled = KEYS[10], unique = KEYS[11], slots = KEYS[12],
  job_stats = KEYS[13], queue_stats = KEYS[14], workers_of_queue = KEYS[15], queues = KEYS[16],
  workers = KEYS[17], batch = KEYS[18], batches_due = KEYS[19], outbox = KEYS[20],
  active_workers = KEYS[21], wake = ARGV[7]}
local culprits = {}
for i = 8, #ARGV do table.insert(culprits, ARGV[i]) end
return recover_worker(k, ARGV[1], KEYS[1], KEYS[2], tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6],
  culprits)
