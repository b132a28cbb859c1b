--[[ Store a job: queued, scheduled (run_at in the future) or deferred behind its parents (or
  canceled with them, when a parent already died), unless one of its claims refuses it.
  run_claim (the scheduler's claim on one due time of a recurring entry) is taken here, with the
  enqueue, so that a claim is never held by a run that was not stored. unique_ttl > 0: the
  unique claim is held that long, whatever becomes of the job (Sidekiq's unique_for); 0: while
  the job is active. max_size > 0: refused when the queue holds as many.
  Input:
    KEYS[1] 'rq:job:' prefix: the job's hash and dependency sets, its parents', a claim holder's
    KEYS[2] 'rq:results:' prefix: the results stream of the id's previous run
    KEYS[3] the queue's list, KEYS[4] its scheduled set, KEYS[5] its deferred set
    KEYS[6] 'rq:queues' set of known queues
    KEYS[7] the unique claim ('' for none)
    KEYS[8] the run claim ('' for none)
    KEYS[9] 'rq:finished:' prefix, KEYS[10] 'rq:failed:' prefix, KEYS[11] 'rq:canceled:' prefix:
      the registries of the queue and of the id's previous run's queue (read from its record)
    KEYS[12] 'jobctl:unique:' prefix: uniqueness claims
    KEYS[13] 'jobctl:slots:' prefix: concurrency slots
    ARGV[1] the arguments by name (JSON): id, queue, run_at, parents, now, now_iso,
            run_claim_owner, run_claim_ttl, unique_ttl, max_size, wake (the 'jobctl:wake:'
            prefix of queues' wake channels)
    ARGV[2...] field, value, ... of the record (a payload is bytes: it does not travel in JSON)
  Output:
    {'ok', id, state} stored: 'queued', 'scheduled', 'deferred' or 'canceled'
    {Refusal.FULL, '', jobs queued} the queue holds max_size jobs
    {Refusal.CLAIMED, holder, ''} the run claim was held
    {Refusal.EXISTS, id, state} the id is taken by an active job
    {Refusal.RECENT, holder, seconds} the unique claim, held for unique_ttl, is held
    {Refusal.DUPLICATE, holder, state} the unique claim is held by an active job
    {Refusal.UNKNOWN_PARENT, parent, ''} a parent does not exist
]]
--- @include "lib"
local args = cjson.decode(ARGV[1])
local id, queue, run_at, claim = args.id, args.queue, args.run_at, KEYS[7]
local parents, now, now_iso = args.parents, args.now, args.now_iso
local run_claim, run_claim_owner, run_claim_ttl = KEYS[8], args.run_claim_owner, args.run_claim_ttl
local unique_ttl, max_size = args.unique_ttl, args.max_size
local k = {job = KEYS[1], results = KEYS[2], by_queue = {[queue] = {queue = KEYS[3], scheduled = KEYS[4],
  deferred = KEYS[5]}}, queues = KEYS[6], finished = KEYS[9], failed = KEYS[10], canceled = KEYS[11],
  unique = KEYS[12], slots = KEYS[13], wake = args.wake}
local key = job_key(k, id)

if max_size > 0 then
  local queued = redis.call('LLEN', KEYS[3])
  if queued >= max_size then return {Refusal.FULL, '', tostring(queued)} end
end

if run_claim ~= '' and not redis.call('SET', run_claim, run_claim_owner, 'NX', 'EX', run_claim_ttl) then
  return {Refusal.CLAIMED, redis.call('GET', run_claim) or '', ''}
end

local status = redis.call('HGET', key, 'status')
if status and ACTIVE[status] then return {Refusal.EXISTS, id, status} end
if claim ~= '' then
  local holder = redis.call('GET', claim)
  if holder and unique_ttl > 0 then return {Refusal.RECENT, holder, tostring(redis.call('TTL', claim))} end
  if holder then
    local held = hget(k, holder, 'status')
    if held and ACTIVE[held] then return {Refusal.DUPLICATE, holder, held} end
  end
end
for _, parent in ipairs(parents) do
  if redis.call('EXISTS', job_key(k, parent)) == 0 then return {Refusal.UNKNOWN_PARENT, parent, ''} end
end

if status then
  -- the id is reused after its job ended: forget the old run, in its registries and in this
  -- queue's (a record whose origin was changed since, or lost, names another)
  local old_queue = redis.call('HGET', key, 'origin') or queue
  for _, registry in ipairs({'finished', 'failed', 'canceled'}) do
    redis.call('ZREM', ended_key(k, registry, old_queue), id)
    redis.call('ZREM', ended_key(k, registry, queue), id)
  end
  redis.call('DEL', key, results_key(k, id), dependencies_key(k, id), old_dependencies_key(k, id))
end

local fields = {}
for i = 2, #ARGV do table.insert(fields, ARGV[i]) end
redis.call('HSET', key, unpack(fields))
if claim ~= '' and unique_ttl > 0 then
  redis.call('SET', claim, id, 'EX', math.ceil(unique_ttl))
elseif claim ~= '' then
  redis.call('SET', claim, id)
  redis.call('HSET', key, 'jobctl_unique', claim)
end

if #parents > 0 then
  for _, parent in ipairs(parents) do
    redis.call('SADD', dependencies_key(k, id), parent)
    redis.call('SADD', dependents_key(k, parent), id)
    -- the parent's outcome script settles its dependents only when this flag says it has some
    redis.call('HSET', job_key(k, parent), 'jobctl_dependents', 1)
  end
  local verdict, culprit = parents_verdict(k, id)
  if verdict == 'doomed' then
    cancel_for_parent(k, id, culprit, now, now_iso)
    return {'ok', id, 'canceled'}
  elseif verdict == 'waiting' then
    redis.call('HSET', key, 'status', 'deferred')
    redis.call('ZADD', KEYS[5], '+inf', id)
    return {'ok', id, 'deferred'}
  end
end

if run_at > now then
  redis.call('HSET', key, 'status', 'scheduled', 'jobctl_scheduled_for', run_at)
  redis.call('ZADD', KEYS[4], run_at, id)
  redis.call('SADD', k.queues, KEYS[3])  -- the promoter looks at every known queue
  return {'ok', id, 'scheduled'}
end
push_queued(k, id, queue, now_iso, false)
return {'ok', id, 'queued'}
