-- Shared by the transition scripts (transitions.py); a script takes it with `--- @include "lib"`.
-- On Redis 7 all of it is one library of functions, defined once; by EVALSHA (Redis 6) each
-- script gets the definitions it uses.
-- Each script is one state transition, atomic in Redis: a job is always in exactly one place.
-- Constant numbers on the hot path are given to redis.call as strings: Redis writes out a Lua
-- number with printf's %.17g, a few thousand instructions each (bench/redis_instructions.py).
--- @include "constants"

-- Keys. A script is given in KEYS every key it touches (keys.py names them), and for a key that
-- depends on what it reads (a job id taken from a list, a queue read from a record) the prefix
-- it is built from. It gathers them by name into a table, `k`, which these functions take
-- first (each script's header lists its KEYS):
--   k.job, k.results           prefixes of job hashes ('rq:job:'; with the id and a suffix, the
--                              job's dependency sets) and results streams
--   k.queue, k.started, k.scheduled, k.deferred, k.finished, k.failed, k.canceled
--                              prefixes of a queue's list and registries
--   k.by_queue[queue][kind]    the same, passed for one queue named in the arguments (a worker's
--                              queues); `rate` there: the queue's rate window
--   k.unique, k.slots, k.job_rate, k.job_stats, k.queue_stats, k.worker, k.active,
--   k.workers_of_queue         prefixes of claims, concurrency slots, job types' rate windows,
--                              stats hashes, worker hashes, in-flight lists, queues' worker sets
--   k.breaker                  prefix of circuit breakers' hashes (keys.breaker)
--   k.queues, k.workers, k.active_workers, k.promoter   keys of their own
--   k.batch, k.batches_due     prefix of batches' hashes ('jobctl:batch:'), the set of batch
--                              callbacks due (every script that ends or requeues a job has them)
--   k.outbox                   this slot's outbox (a Redis Cluster's; see `post`)
--   k.wake, k.commands         prefixes of pub/sub channels (not keys: given in ARGV)
local function job_key(k, id) return k.job .. id end
local function results_key(k, id) return k.results .. id end
local function dependents_key(k, id) return k.job .. id .. ':dependents' end
-- RQ 2.x's set of a job's parents (Job.dependencies_key: two colons), and where jobctl kept them
-- before it wrote RQ's
local function dependencies_key(k, id) return k.job .. ':' .. id .. ':dependencies' end
local function old_dependencies_key(k, id) return k.job .. id .. ':dependencies' end
-- On a Redis Cluster, a job's parents and dependents on other queues (keys.Layout's
-- remote_parents, remote_dependents), each named by the JSON [id, queue] of the other job: a
-- script runs on one slot, so a parent and a child of two queues hear of each other through
-- outboxes. remote_dependents is a set of them; remote_parents a hash of them whose value is ''
-- while the job waits to hear of that parent's end, or the status of an end that dooms it
-- ('failed', 'canceled'), kept until the parent comes back (see apply_entry).
local function remote_parents_key(k, id) return k.job .. id .. ':remote-parents' end
-- the revival count (jobctl_revivals) of each remote parent as last heard, see apply_entry
local function remote_heard_key(k, id) return k.job .. id .. ':remote-parents-heard' end
local function remote_dependents_key(k, id) return k.job .. id .. ':remote-dependents' end

-- A key of a queue of one kind ('queue': its list, 'started', 'scheduled', 'deferred',
-- 'finished', 'failed', 'canceled': its registries, 'rate': its rate window, 'queue_stats',
-- 'workers_of_queue'): the one passed for that queue, else built from the kind's prefix (a queue
-- read from a record). On a Redis Cluster (CLUSTER) a call serves the one queue whose slot it
-- runs on, and is given that queue's keys whole where it is given prefixes on one Redis.
local function queue_key(k, kind, queue)
  local passed = k.by_queue and k.by_queue[queue]
  if passed and passed[kind] then return passed[kind] end
  if CLUSTER then return k[kind] end
  return k[kind] .. queue
end

-- RQ's set of known queues, which the promoter reads: on a cluster a fleet-wide key no script
-- touches (its slot is another queue's), which the producers and workers write themselves.
local function known_queue(k, list)
  if not CLUSTER then redis.call('SADD', k.queues, list) end
end

-- k.by_queue of a worker's queues, from KEYS[first] on: four keys for each queue of `queues`, in
-- order: its list, started registry, scheduled set and rate window (script_keys.py, _queue_keys).
local function queue_keys(keys, first, queues)
  local by_queue = {}
  for i, queue in ipairs(queues) do
    local at = first + 4 * (i - 1)
    by_queue[queue] = {queue = keys[at], started = keys[at + 1], scheduled = keys[at + 2], rate = keys[at + 3]}
  end
  return by_queue
end

-- The registry of a queue's ended jobs of an RQ status (keys.ended).
local function ended_key(k, status, queue)
  if status == 'finished' or status == 'failed' then return queue_key(k, status, queue) end
  return queue_key(k, 'canceled', queue)
end

local ACTIVE = {queued = true, scheduled = true, deferred = true, started = true}

-- A record may hold what another tool, or a hand, wrote: a script never raises on a value it
-- reads once it has written anything (Redis keeps the writes made before an error, which would
-- leave a job outside every list: tests/test_partial_writes.py). These read a field as a number
-- only when it is finite, and as a whole number only when EXPIRE and ZADD take it; else nil.
local function finite(value)
  local n = tonumber(value)  -- Lua's tonumber takes 'nan', 'inf' and '1e999'
  if n and n == n and n ~= math.huge and n ~= -math.huge then return n end
  return nil
end

local function whole(value)
  local n = finite(value)
  if n and n == math.floor(n) and math.abs(n) < 1e15 then return n end
  return nil
end

-- HINCRBY (or `command`, HINCRBYFLOAT) on a field another tool may have spoiled: one that is not
-- a number starts again from `by` (a key that is not a hash at all, a counter of jobctl's
-- bookkeeping, is left alone).
local function incr(key, field, by, command)
  local count = redis.pcall(command or 'HINCRBY', key, field, by)
  if type(count) == 'table' then
    count = by
    redis.pcall('HSET', key, field, by)
  end
  return count
end

-- A key named by a field of the record (a unique claim, a concurrency slot): used only when it
-- is one of jobctl's keys of that kind (`prefix`), never any key a spoiled field names.
local function named_key(value, prefix)
  if value and string.sub(value, 1, #prefix) == prefix then return value end
  return nil
end

local function hget(k, id, field) return redis.call('HGET', job_key(k, id), field) end

local function release_unique(k, id)
  local claim = named_key(hget(k, id, 'jobctl_unique'), k.unique)
  if claim and redis.pcall('GET', claim) == id then redis.call('DEL', claim) end
end

-- A queue that was empty just got a job: wake the workers idle on it (they subscribe to this
-- channel; a busy worker fetches its next job in its outcome script and needs no wake-up).
local function wake(k, queue, length)
  if length == 1 then redis.call('PUBLISH', k.wake .. queue, '') end
end

local function push_queued(k, id, queue, now_iso, front)
  local list = queue_key(k, 'queue', queue)
  redis.call('HSET', job_key(k, id), 'status', 'queued', 'enqueued_at', now_iso)
  redis.call('HDEL', job_key(k, id), 'jobctl_scheduled_for')
  wake(k, queue, redis.call(front and 'LPUSH' or 'RPUSH', list, id))
  known_queue(k, list)
end

-- Fencing: a worker holds a lease, the token in its own hash, which lives as long as its
-- heartbeats keep it alive. A worker presumed dead (hash expired or deleted by recovery) has
-- lost it, and every script it calls then refuses to act: a frozen worker that wakes up must not
-- run a job a second time (test_worker.py's frozen-worker tests).
local function lease_holds(worker_key, token)
  return redis.call('HGET', worker_key, 'jobctl_lease') == token
end

-- A list another tool spoiled (not JSON, not a list, or not one JSON can hold again) starts over.
local function add_error(k, id, entry)
  local ok, errors = pcall(cjson.decode, hget(k, id, 'jobctl_errors') or '[]')
  if not ok or type(errors) ~= 'table' or (next(errors) ~= nil and errors[1] == nil) then errors = {} end
  table.insert(errors, entry)
  local encoded
  ok, encoded = pcall(cjson.encode, errors)
  if not ok then encoded = cjson.encode({entry}) end
  redis.call('HSET', job_key(k, id), 'jobctl_errors', encoded)
end

-- A job's parents: RQ's set, and the one jobctl kept before it wrote RQ's (a job deferred by an
-- earlier version).
local function parents_of(k, id)
  return redis.call('SUNION', dependencies_key(k, id), old_dependencies_key(k, id))
end

-- 'ready' when every parent finished (or, for jobs that allow failure, ended at all),
-- 'doomed' when a parent died, was canceled or stopped and failure is not allowed, 'waiting'
-- otherwise. Failure is allowed by RQ's allow_dependency_failures (what RQ's Dependency(...,
-- allow_failure=True) and `jobctl enqueue --allow-failure` write), or by the field an earlier
-- jobctl wrote.
local function failure_allowed(k, id)
  local allow = redis.call('HMGET', job_key(k, id), 'allow_dependency_failures', 'jobctl_allow_failure')
  return allow[1] == '1' or allow[2] == '1'
end

local FAILED = {failed = true, canceled = true, stopped = true}

-- A parent of another queue (a Redis Cluster's) counts as waiting until its outcome reached
-- this slot (apply_entry), which then takes it out of the job's remote parents, or notes there
-- the end that dooms the job (as a parent of this slot's status does, until it comes back).
-- 'doomed' also names the parent that dooms the job, and that parent's status.
local function parents_verdict(k, id)
  local allow_failure = failure_allowed(k, id)
  local verdict = 'ready'
  if CLUSTER then
    local heard = redis.call('HGETALL', remote_parents_key(k, id))
    for i = 1, #heard, 2 do
      if heard[i + 1] == '' then
        verdict = 'waiting'
      elseif not allow_failure then
        -- a field another tool wrote names no parent: skipped, as tell_remote_dependents skips a
        -- member, so that an outcome script reading it never stops after it moved its job
        local ok, parent = pcall(cjson.decode, heard[i])
        if ok and type(parent) == 'table' and type(parent[1]) == 'string' and type(parent[2]) == 'string' then
          return 'doomed', parent[1], heard[i + 1]
        end
      end
    end
  end
  for _, parent in ipairs(parents_of(k, id)) do
    local status = hget(k, parent, 'status')
    -- a parent whose record expired finished long ago (dead jobs outlive finished ones)
    if status and status ~= 'finished' then
      if FAILED[status] then
        if not allow_failure then return 'doomed', parent, status end
      else
        verdict = 'waiting'
      end
    end
  end
  return verdict, nil
end

local function stats_count(k, job_name, queue, field, by)
  incr(k.job_stats .. job_name, field, by)
  incr(queue_key(k, 'queue_stats', queue), field, by)
end

-- A job's record, results and dependency sets.
local function delete_job(k, id)
  redis.call('DEL', job_key(k, id), results_key(k, id), dependencies_key(k, id), old_dependencies_key(k, id),
    dependents_key(k, id), remote_parents_key(k, id), remote_heard_key(k, id), remote_dependents_key(k, id))
end

-- An ended job's registry entry, due (and its record expiring) `ttl` seconds from now; a
-- negative ttl keeps it forever, as RQ's result_ttl/failure_ttl -1 does.
local function keep_ended(k, id, registry, now, ttl)
  if ttl < 0 then
    redis.call('ZADD', registry, '+inf', id)
  else
    redis.call('ZADD', registry, now + ttl, id)
    redis.call('EXPIRE', job_key(k, id), ttl)
  end
end

-- `slots`: the job's jobctl_slot field, read by the caller with what else it reads of the job.
local function release_slot(k, id, slots)
  slots = named_key(slots, k.slots)
  if slots then
    redis.pcall('HDEL', slots, id)
    redis.call('HDEL', job_key(k, id), 'jobctl_slot')
  end
end

-- Batches (api/batches.py). A batch's hash counts its jobs' final outcomes: pending, succeeded,
-- failed (dead or canceled; their ids in its failed set). The script whose outcome leaves a
-- sealed batch with nothing pending completes it, in the same atomic step: it starts the next
-- completion generation and marks the callbacks of that generation due in k.batches_due, with
-- the counts they are called with; api/batches.enqueue_due stores each under a claim of its own
-- (once per batch, callback and generation), whichever process does it and however often.
-- on_complete is due at every completion, on_success at the first one with nothing failed.
-- On a Redis Cluster the batch is in a slot of its own (keys.Layout.batch): a script there is
-- given its hash whole in k.batch, and its due set in k.batches_due (apply_batch.lua,
-- join_batch.lua, seal_batch.lua); a job's outcome reaches it through the job's queue's outbox.
local function batch_key(k, batch)
  if CLUSTER then return k.batch end
  return k.batch .. batch
end

local function batch_check(k, batch, now)
  local key = batch_key(k, batch)
  local b = redis.call('HMGET', key, 'sealed', 'pending', 'complete', 'total', 'succeeded', 'failed', 'on_complete',
    'on_success', 'success_due')
  if b[1] ~= '1' or (whole(b[2]) or 0) > 0 or b[3] == '1' then return end
  local generation = incr(key, 'generation', 1)
  redis.call('HSET', key, 'complete', 1, 'completed_at', now)
  local function due(kind)
    redis.call('ZADD', k.batches_due, now, cjson.encode({batch, kind, generation, whole(b[4]) or 0, whole(b[5]) or 0,
      whole(b[6]) or 0}))
  end
  if (b[7] or '') ~= '' then due('complete') end
  if (b[8] or '') ~= '' and (whole(b[6]) or 0) == 0 and not b[9] then
    redis.call('HSET', key, 'success_due', generation)
    due('success')
  end
end

-- New jobs join a batch: one that exists (its total set) and is not complete (a job of the batch
-- that is still running keeps it open, and may add more); the enqueue scripts check both first
-- (on a cluster, join_batch.lua on the batch's slot before the job is stored, where a join
-- made again, an id already a job of the batch, counts once). Returns how many joined.
local function batch_state(k, batch) return redis.call('HMGET', batch_key(k, batch), 'total', 'complete') end
local function batch_joined(k, batch, ids)
  local joined = redis.call('SADD', batch_key(k, batch) .. ':jobs', unpack(ids))
  if not CLUSTER then joined = #ids end
  incr(batch_key(k, batch), 'total', joined)
  incr(batch_key(k, batch), 'pending', joined)
  return joined
end

-- A job of a batch ended for good, counted on the batch's slot: 'succeeded' or 'failed' (dead or
-- canceled).
local function batch_counted(k, batch, id, outcome, now)
  local key = batch_key(k, batch)
  incr(key, 'pending', -1)
  incr(key, outcome, 1)
  if outcome == 'failed' then redis.pcall('SADD', key .. ':failed', id) end
  batch_check(k, batch, now)
end

-- A dead or canceled job of a batch is back (requeue-dead), on the batch's slot: the batch is
-- open again. Returns whether it was counted failed (else nothing changes).
local function batch_uncounted(k, batch, id)
  local key = batch_key(k, batch)
  local removed = redis.pcall('SREM', key .. ':failed', id)
  if removed ~= 1 or redis.call('TYPE', key).ok ~= 'hash' then return false end
  incr(key, 'failed', -1)
  incr(key, 'pending', 1)
  redis.call('HSET', key, 'complete', 0)
  return true
end

-- On a cluster, what befell a job of a batch goes to the batch's slot through the job's queue's
-- outbox (see post), in the same atomic step: apply_batch.lua counts it there (batch_apply).
local function post_batch(k, op, id, batch)
  redis.call('RPUSH', k.outbox, cjson.encode({kind = 'batch', op = op, job = id, batch = batch}))
end

-- A job of a batch ended for good: 'succeeded' or 'failed' (dead or canceled).
local function batch_ended(k, id, outcome, now)
  local batch = hget(k, id, 'jobctl_batch')
  if not batch then return end
  if CLUSTER then return post_batch(k, outcome, id, batch) end
  -- another tool's key under the batch's name (not a hash) is no batch; its counts and failed set
  -- are written so that a spoiled one never stops the outcome script halfway (incr, pcall)
  if redis.call('TYPE', k.batch .. batch).ok ~= 'hash' then return end
  batch_counted(k, batch, id, outcome, now)
end

-- A dead or canceled job of a batch is back (requeue-dead): the batch is open again.
local function batch_reopened(k, id)
  local batch = hget(k, id, 'jobctl_batch')
  if not batch then return end
  if CLUSTER then return post_batch(k, 'reopened', id, batch) end
  batch_uncounted(k, batch, id)
end

-- A batch entry (post_batch) applied on the batch's slot (apply_batch.lua). Applied again it
-- changes nothing: an outcome counts only when the job is in neither of its outcome sets (the
-- :succeeded set is a cluster's only), a re-opening only when the job is in the failed set.
-- Returns 1 when it changed something, else 0.
local function batch_apply(k, entry, now)
  local key, id, batch = k.batch, entry.job, entry.batch
  if redis.call('TYPE', key).ok ~= 'hash' or redis.call('SISMEMBER', key .. ':jobs', id) == 0 then return 0 end
  if entry.op == 'reopened' then return batch_uncounted(k, batch, id) and 1 or 0 end
  if entry.op ~= 'succeeded' and entry.op ~= 'failed' then return 0 end
  if redis.call('SISMEMBER', key .. ':failed', id) == 1 then return 0 end
  if entry.op == 'succeeded' and redis.call('SADD', key .. ':succeeded', id) == 0 then return 0 end
  if entry.op == 'failed' and redis.call('SISMEMBER', key .. ':succeeded', id) == 1 then return 0 end
  batch_counted(k, batch, id, entry.op, now)
  return 1
end

local function cancel(k, id, reason, now, now_iso)
  local key = job_key(k, id)
  local queue = hget(k, id, 'origin')
  local ttl = whole(hget(k, id, 'failure_ttl')) or FAILURE_TTL
  release_slot(k, id, hget(k, id, 'jobctl_slot'))  -- held by a reservation
  redis.call('ZREM', queue_key(k, 'deferred', queue), id)
  redis.call('ZREM', queue_key(k, 'scheduled', queue), id)
  redis.call('LREM', queue_key(k, 'queue', queue), 0, id)
  redis.call('HSET', key, 'status', 'canceled', 'ended_at', now_iso, 'jobctl_reason', reason)
  keep_ended(k, id, queue_key(k, 'canceled', queue), now, ttl)
  release_unique(k, id)
  batch_ended(k, id, 'failed', now)
end

-- A dependent that can no longer run: canceled, naming in jobctl_canceled_by the parent that
-- doomed it (requeue-dead brings such dependents back with their parent). `status`: the
-- parent's, as parents_verdict found it (a parent of another queue has no record here).
local function doomed_by(k, culprit, status)
  return 'parent ' .. culprit .. ' is ' .. ((status or hget(k, culprit, 'status')) == 'failed' and 'dead' or 'canceled')
end
local function cancel_for_parent(k, id, culprit, now, now_iso, status)
  cancel(k, id, doomed_by(k, culprit, status), now, now_iso)
  redis.call('HSET', job_key(k, id), 'jobctl_canceled_by', culprit)
end

-- The outbox (a Redis Cluster's): an entry a script of this slot writes for another queue's slot,
-- in the same atomic step as what it tells of; the promoter applies it there (apply.lua, see
-- apply_entry) and then removes it. Applying an entry twice changes nothing, so a promoter that
-- dies between the two steps runs no job twice and loses none.
local function post(k, kind, child, child_queue, parent, parent_queue, status, revivals)
  redis.call('RPUSH', k.outbox, cjson.encode({kind = kind, job = child, queue = child_queue, parent = parent,
    parent_queue = parent_queue, status = status, revivals = revivals}))
end

-- A parent ended: each of its dependents on other queues hears of it through the outbox. The set
-- stays (until the parent's record goes): requeue-dead of a dead parent brings back those its
-- death canceled (revive_dependents), and a settle heard twice changes nothing. Each entry says
-- how many times the parent came back from the dead (jobctl_revivals, counted as it tells of a
-- revival): see apply_entry.
local function revivals_of(k, parent) return whole(hget(k, parent, 'jobctl_revivals')) or 0 end

local function tell_remote_dependents(k, parent, kind)
  local members = redis.call('SMEMBERS', remote_dependents_key(k, parent))
  if #members == 0 then return end
  local status, queue = hget(k, parent, 'status'), hget(k, parent, 'origin')
  local revivals = kind == 'revive' and incr(job_key(k, parent), 'jobctl_revivals', 1) or revivals_of(k, parent)
  for _, member in ipairs(members) do
    -- a member another tool wrote is skipped: decoding it must not fail the outcome script after
    -- it moved the job (tests/test_cluster_flows.py)
    local ok, child = pcall(cjson.decode, member)
    if ok and type(child) == 'table' and type(child[1]) == 'string' and type(child[2]) == 'string' then
      post(k, kind, child[1], child[2], parent, queue, status, revivals)
    end
  end
end

-- After a parent ended: queue the deferred children it was the last to wait for, and cancel
-- (with their own children: the failure cascade) those that can no longer run.
local function settle_dependents(k, parent_id, now, now_iso)
  local pending = {parent_id}
  while #pending > 0 do
    local parent = table.remove(pending)
    if CLUSTER then tell_remote_dependents(k, parent, 'settle') end
    for _, child in ipairs(redis.call('SMEMBERS', dependents_key(k, parent))) do
      if hget(k, child, 'status') == 'deferred' then
        local verdict, culprit, culprit_status = parents_verdict(k, child)
        if verdict == 'ready' then
          local queue = hget(k, child, 'origin')
          redis.call('ZREM', queue_key(k, 'deferred', queue), child)
          push_queued(k, child, queue, now_iso, false)
        elseif verdict == 'doomed' then
          cancel_for_parent(k, child, culprit, now, now_iso, culprit_status)
          table.insert(pending, child)
        end
      end
    end
  end
end

-- Deferred jobs RQ's own Queue.enqueue(depends_on=...) stored, on `queue`: RQ scores its deferred
-- registry's entries with their creation time where jobctl scores '+inf', and marks no parent.
-- Each is adopted once: its parents are marked (their outcome script then settles it, see
-- succeed.lua), its entry gets jobctl's score, and it is settled now if its parents already
-- allow (one may have ended before). A child queued here leaves its parents' dependents sets, as
-- RQ's enqueue_dependents does with those it queues: an RQ worker ending a parent meanwhile
-- (engine: rq) then does not queue it a second time.
local function adopt_deferred(k, queue, now, now_iso)
  local registry = queue_key(k, 'deferred', queue)
  for _, child in ipairs(redis.call('ZRANGEBYSCORE', registry, '-inf', '(+inf', 'LIMIT', 0, 1000)) do
    if hget(k, child, 'status') ~= 'deferred' then
      redis.call('ZREM', registry, child)
    else
      redis.call('ZADD', registry, '+inf', child)
      local parents = parents_of(k, child)
      for _, parent in ipairs(parents) do
        if redis.call('EXISTS', job_key(k, parent)) == 1 then
          redis.call('HSET', job_key(k, parent), 'jobctl_dependents', 1)
        end
      end
      local verdict, culprit, culprit_status = parents_verdict(k, child)
      if verdict == 'ready' then
        for _, parent in ipairs(parents) do redis.call('SREM', dependents_key(k, parent), child) end
        redis.call('ZREM', registry, child)
        push_queued(k, child, queue, now_iso, false)
      elseif verdict == 'doomed' then
        cancel_for_parent(k, child, culprit, now, now_iso, culprit_status)
        settle_dependents(k, child, now, now_iso)
      end
    end
  end
end

-- A unique job coming back (requeue-dead) takes its claim again: false, with nothing written,
-- while another active job holds it (two active copies is what unique refuses).
local function reclaim(k, id)
  -- only a key of jobctl's claims: a hand-edited field must not make this overwrite another key
  local claim = named_key(hget(k, id, 'jobctl_unique'), k.unique)
  if not claim then return true end
  local holder = redis.pcall('GET', claim)  -- a claim key of another type: no holder
  if type(holder) ~= 'string' then holder = nil end
  if holder and holder ~= id and ACTIVE[hget(k, holder, 'status') or ''] then return false end
  redis.call('SET', claim, id)
  return true
end

-- A dependent comes back deferred only if `parent`'s death (or its own parent's, down the
-- cascade) canceled it; if another parent still dooms it, it stays canceled, naming that parent.
-- Returns whether it came back.
local function revived(k, child, parent)
  local child_queue = hget(k, child, 'origin')
  if hget(k, child, 'status') ~= 'canceled' or hget(k, child, 'jobctl_canceled_by') ~= parent or not child_queue then
    return false
  end
  local verdict, culprit, culprit_status = parents_verdict(k, child)
  if verdict == 'doomed' then
    redis.call('HSET', job_key(k, child), 'jobctl_canceled_by', culprit,
      'jobctl_reason', doomed_by(k, culprit, culprit_status))
    return false
  end
  if not reclaim(k, child) then return false end
  redis.call('ZREM', queue_key(k, 'canceled', child_queue), child)
  redis.call('PERSIST', job_key(k, child))
  redis.call('HSET', job_key(k, child), 'status', 'deferred', 'ended_at', '')
  redis.call('HDEL', job_key(k, child), 'jobctl_reason', 'jobctl_canceled_by')
  redis.call('ZADD', queue_key(k, 'deferred', child_queue), '+inf', child)
  batch_reopened(k, child)
  return true
end

-- A dead job came back (requeue-dead, or a 'revive' entry for `id` applied here): the dependents
-- its death canceled come back with it, down the cascade; on a cluster those of other queues hear
-- of it through the outbox (a 'revive' entry, see apply_entry).
local function revive_dependents(k, id)
  local pending = {id}
  while #pending > 0 do
    local parent = table.remove(pending)
    if CLUSTER then tell_remote_dependents(k, parent, 'revive') end
    for _, child in ipairs(redis.call('SMEMBERS', dependents_key(k, parent))) do
      if revived(k, child, parent) then table.insert(pending, child) end
    end
  end
end

-- An outbox entry (see post) applied on the slot it is for (apply.lua); applied again, it changes
-- nothing. Returns 1 when it changed something, else 0.
--   link: a job of another queue (entry.job, entry.queue) waits on entry.parent, of this slot:
--     it joins the parent's remote dependents (also a parent that ended already, for requeue-dead
--     to find it), and hears at once of a parent that ended (an entry back; a parent whose record
--     expired finished long ago, as in parents_verdict).
--   revive: entry.parent, of another queue, came back from the dead (requeue-dead): the job, if
--     it has not left deferred for its queue, waits on it again among its remote parents (also
--     when another parent canceled it, for when that one comes back, or it allows failure) and,
--     if that death canceled it, comes back deferred with the dependents its cancellation
--     canceled (revive_dependents); applied again, the job waits on it already: nothing changes.
--   settle: entry.parent, of another queue, ended with entry.status: the job leaves its remote
--     parents, or, when that end dooms it, keeps it there with the status (until a revive); only
--     when this is news is the job queued, if no parent is left to wait for, or canceled with its
--     own dependents, if a parent's end dooms it. Kept also when the job is no longer deferred: a
--     job another parent canceled, brought back when that one is requeued, still hears of it.
-- A settle or revive telling of fewer revivals of its parent than the job heard of already is
-- older than what the job knows, and changes nothing: a promoter that read its outbox, stalled
-- past its lease, and applies what it read after the next promoter applied newer entries would
-- otherwise apply a death after the revival that followed it (the job canceled again, its
-- parent running). Entries without the count (posted before it existed) count none.
local function apply_entry(k, entry, now, now_iso)
  local id, parent = entry.job, entry.parent
  if entry.kind == 'link' then
    local status = hget(k, parent, 'status')
    local added = 0
    if status then
      -- also when the parent ended before this entry came: requeue-dead of a dead parent then
      -- finds the child its death canceled (tests/test_cluster_flows.py)
      redis.call('HSET', job_key(k, parent), 'jobctl_dependents', 1)  -- its outcome script settles them
      added = redis.call('SADD', remote_dependents_key(k, parent), cjson.encode({id, entry.queue}))
      if not FAILED[status] and status ~= 'finished' then return added end
    end
    post(k, 'settle', id, entry.queue, parent, entry.parent_queue, status or 'finished', revivals_of(k, parent))
    return 1
  end
  local parents, named = remote_parents_key(k, id), cjson.encode({parent, entry.parent_queue})
  local revivals = whole(entry.revivals) or 0
  local known = whole(redis.call('HGET', remote_heard_key(k, id), named)) or 0
  if revivals < known then return 0 end
  -- kept only for a job still here: an entry for one deleted since must not leave a key behind
  if revivals > known and hget(k, id, 'status') then redis.call('HSET', remote_heard_key(k, id), named, revivals) end
  local heard = redis.call('HGET', parents, named)
  if entry.kind == 'revive' then
    local status = hget(k, id, 'status')
    if (status ~= 'deferred' and status ~= 'canceled') or heard == '' then return 0 end
    redis.call('HSET', parents, named, '')
    if revived(k, id, parent) then revive_dependents(k, id) end
    return 1
  end
  if not heard then return 0 end
  if FAILED[entry.status] and not failure_allowed(k, id) then
    if heard == entry.status then return 0 end
    redis.call('HSET', parents, named, entry.status)
  else
    redis.call('HDEL', parents, named)
  end
  if hget(k, id, 'status') ~= 'deferred' then return 1 end
  local verdict, culprit, culprit_status = parents_verdict(k, id)
  if verdict == 'ready' then
    local queue = hget(k, id, 'origin')
    redis.call('ZREM', queue_key(k, 'deferred', queue), id)
    push_queued(k, id, queue, now_iso, false)
  elseif verdict == 'doomed' then
    cancel_for_parent(k, id, culprit, now, now_iso, culprit_status)
    settle_dependents(k, id, now, now_iso)
  end
  return 1
end

local function bury(k, id, queue, reason, now, now_iso)
  local key = job_key(k, id)
  local ttl = whole(hget(k, id, 'failure_ttl')) or FAILURE_TTL
  -- jobctl_dead: a job RQ's tools bring back (rq requeue) gets a fresh budget at its next start
  redis.call('HSET', key, 'status', 'failed', 'ended_at', now_iso, 'jobctl_reason', reason, 'jobctl_dead', 1)
  keep_ended(k, id, queue_key(k, 'failed', queue), now, ttl)
  release_unique(k, id)
  stats_count(k, hget(k, id, 'jobctl_job') or 'unknown', queue, 'dead', 1)
  batch_ended(k, id, 'failed', now)
  settle_dependents(k, id, now, now_iso)
  -- @job(keep_dead=False), Sidekiq's `dead: false`: not kept, once its dependents are settled
  if hget(k, id, 'jobctl_keep_dead') == '0' then
    redis.call('ZREM', queue_key(k, 'failed', queue), id)
    delete_job(k, id)
  end
end

-- Rate and concurrency limits (jobctl/limits.py explains them). The calling worker passes the
-- limits of its jobs and queues (limits.py's fields -> "count period_seconds" for a rate, N for
-- max_concurrency); a script sets `limits` from its argument before start_next runs. With no
-- limit configured, checking them costs no Redis command (the per-job budget bench/throughput.py
-- measures).
local limits = {}
local CONCURRENCY_RECHECK = 0.5  -- seconds before a job held back by max_concurrency is tried again
local MAX_HELD_BACK = 1000  -- jobs one start_next may hold back: bounds the script's work

-- The rate limit of a LIMITS field: (count, period) or nil, with its window (keys.rate_window)
-- pruned to the period.
local function rate_of(field, window, now)
  local limit = limits[field]
  if not limit then return nil end
  local count, period = string.match(limit, '^(%d+) ([%d%.e+-]+)$')
  count, period = tonumber(count), tonumber(period)
  redis.call('ZREMRANGEBYSCORE', window, '-inf', now - period)
  return count, period
end

-- Seconds until one more start fits the rate (0: now).
local function rate_wait(window, count, period, now)
  local started = redis.call('ZCARD', window)
  if started < count then return 0 end
  local freeing = redis.call('ZRANGE', window, started - count, started - count, 'WITHSCORES')
  return math.max(tonumber(freeing[2]) + period - now, 0.001)
end

local function count_start(window, period, id, now)
  redis.call('ZADD', window, now, id .. ':' .. now)
  redis.call('PEXPIRE', window, math.ceil(period * 1000) + 1000)
end

-- When a job held back by a rate comes back: when the rate allows, but after the previous one
-- held back by it plus one interval (period / count), so that a backlog comes back spread out,
-- not all at once to be held back again.
local function rate_return(window, count, period, at, now)
  local next_key = window .. ':next'  -- keys.rate_next
  at = math.max(at, finite(redis.call('GET', next_key)) or 0)
  redis.call('SET', next_key, at + period / count, 'PX', math.ceil((at - now + period) * 1000))
  return at
end

-- Running jobs of the type, counting only slots whose worker still holds its lease and its job:
-- a slot whose holder is gone by any path (a reservation given back or canceled, a record
-- deleted) counts no more.
local function slots_held(k, slots)
  local held = redis.call('HGETALL', slots)
  local count = 0
  for i = 1, #held, 2 do
    local worker = held[i + 1]
    if redis.call('EXISTS', k.worker .. worker) == 1 and redis.call('LPOS', k.active .. worker, held[i]) then
      count = count + 1
    else
      redis.call('HDEL', slots, held[i])
    end
  end
  return count
end

-- Circuit breakers (config/limits.py explains them). limits['breaker:job:<job>'] names the job
-- type's breaker, limits['breaker:<name>'] holds its "failures window cooldown"; its hash is
-- k.breaker .. name (keys.breaker): state 'open' from opened_at to open_until, then half-open
-- (still 'open', its cool-down over) until one trial ends.
local BREAKER_RECHECK = 1  -- seconds before a job held back by another job's trial is tried again

-- A breaker's hash, or nil when its name holds another type of value (another tool's key, a hand
-- edit): the breaker is then ignored rather than a script failing after it moved a job.
local function breaker_hash(key)
  local kind = redis.call('TYPE', key).ok
  if kind == 'hash' or kind == 'none' then return key end
  return nil
end

-- The breaker's hash of the job type, or nil.
local function breaker_key(k, job_name)
  local name = job_name and limits['breaker:job:' .. job_name]
  return name and breaker_hash(k.breaker .. name) or nil
end

-- Whether another job holds the breaker's trial, counting only a holder whose worker still holds
-- its lease and the job (as slots_held does): a trial whose job was recovered, given back or
-- canceled is dropped, so the breaker is never stuck half-open.
local function trial_held(k, key, id)
  local trial = redis.call('HMGET', key, 'trial', 'trial_worker')
  if not trial[1] or trial[1] == id then return false end
  if trial[2] and redis.call('EXISTS', k.worker .. trial[2]) == 1 and redis.call('LPOS', k.active .. trial[2], trial[1]) then
    return true
  end
  redis.call('HDEL', key, 'trial', 'trial_worker')
  return false
end

-- 0 when the breaker lets job `id` start (half-open: as its trial), else when to try it again.
local function breaker_wait(k, key, id, now)
  local state = redis.call('HMGET', key, 'state', 'open_until')
  if state[1] ~= 'open' then return 0 end
  local open_until = finite(state[2]) or 0
  if now < open_until then return open_until end
  if trial_held(k, key, id) then return now + BREAKER_RECHECK end
  return 0
end

-- Job `id` (run by `worker`) starts under the breaker: half-open, it is the trial.
local function breaker_start(k, key, id, worker)
  if redis.call('HGET', key, 'state') == 'open' then redis.call('HSET', key, 'trial', id, 'trial_worker', worker) end
end

local function breaker_open(key, now, cooldown)
  redis.call('HSET', key, 'state', 'open', 'opened_at', now, 'open_until', now + cooldown)
  incr(key, 'opens', 1)
  redis.call('HDEL', key, 'trial', 'trial_worker')
  redis.call('DEL', key .. ':failures')  -- keys.breaker_failures
end

-- Record an attempt of job `id` under the breaker `key` (named in `settings`: the `limits` of the
-- caller): `failed` true for a failure the breaker counts, false for any other end of the call,
-- nil for none (canceled, deferred: the trial is given up). Returns 'opened <name>',
-- 'closed <name>' or ''.
-- A trial's end decides: success closes, failure opens for another cool-down. Closed, a failure
-- is counted in the window; `failures` of them open it.
local function breaker_outcome(k, key, settings, id, failed, now)
  local name = string.sub(key, #k.breaker + 1)
  local failures, window, cooldown = string.match(settings['breaker:' .. name] or '', '^(%d+) ([%d%.e+-]+) ([%d%.e+-]+)$')
  local state = redis.call('HMGET', key, 'state', 'trial')
  local trial = state[2] == id
  if trial then redis.call('HDEL', key, 'trial', 'trial_worker') end
  if failed == nil or not failures then return '' end
  failures, window, cooldown = tonumber(failures), tonumber(window), tonumber(cooldown)
  if state[1] == 'open' then
    -- an attempt started before it opened ends: not a verdict; the trial's is
    if not trial then return '' end
    if failed then
      breaker_open(key, now, cooldown)
      return 'opened ' .. name
    end
    redis.call('HSET', key, 'state', 'closed')
    redis.call('HDEL', key, 'opened_at', 'open_until')
    return 'closed ' .. name
  end
  if not failed then return '' end
  local failures_key = key .. ':failures'
  if redis.call('TYPE', failures_key).ok ~= 'zset' then redis.call('DEL', failures_key) end  -- jobctl's own name
  redis.call('ZADD', failures_key, now, id .. ':' .. now)
  redis.call('ZREMRANGEBYSCORE', failures_key, '-inf', now - window)
  redis.call('PEXPIRE', failures_key, math.ceil(window * 1000) + 1000)
  if redis.call('ZCARD', failures_key) >= failures then
    breaker_open(key, now, cooldown)
    return 'opened ' .. name
  end
  return ''
end

-- The outcome scripts' breaker step: the job's breaker (`field`: the record's jobctl_breaker, set
-- when it started, read by the caller with what else it reads of the job) records the attempt
-- (breaker_outcome); '' when it has none.
local function job_breaker_outcome(k, settings, id, field, failed, now)
  local key = named_key(field, k.breaker)
  key = key and breaker_hash(key)
  if not key then return '' end
  return breaker_outcome(k, key, settings, id, failed, now)
end

local function rate_allows(field, window, now)
  local count, period = rate_of(field, window, now)
  return not count or rate_wait(window, count, period, now) == 0
end

-- 0 when a job of the type `job_name`, fetched from `queue`, may start now (the start is then
-- counted against the limits), else the unix time at which to try it again.
local function may_start(k, id, job_name, queue, worker, now)
  if next(limits) == nil then return 0 end  -- a worker without limits: the common case, kept cheap
  local max_running, slots = nil, nil
  local breaker = breaker_key(k, job_name)
  if breaker then
    local wait = breaker_wait(k, breaker, id, now)
    if wait > 0 then return wait end
  end
  if job_name then
    max_running = tonumber(limits['concurrency:job:' .. job_name])
    slots = k.slots .. job_name
    if max_running and slots_held(k, slots) >= max_running then return now + CONCURRENCY_RECHECK end
    local window = k.job_rate .. job_name
    local count, period = rate_of('rate:job:' .. job_name, window, now)
    if count then
      local wait = rate_wait(window, count, period, now)
      if wait > 0 then return rate_return(window, count, period, now + wait, now) end
      count_start(window, period, id, now)
    end
  end
  local window = queue_key(k, 'rate', queue)
  local count, period = rate_of('rate:queue:' .. queue, window, now)
  if count then count_start(window, period, id, now) end
  if max_running then
    redis.call('HSET', slots, id, worker)
    redis.call('HSET', job_key(k, id), 'jobctl_slot', slots)
  end
  if breaker then
    breaker_start(k, breaker, id, worker)
    redis.call('HSET', job_key(k, id), 'jobctl_breaker', breaker)
  end
  return 0
end

-- A job that may not start yet waits in the scheduled set, its attempt unused; promotion brings
-- it back (start_next takes it out of the worker's in-flight list).
local function hold_back(k, id, queue, at)
  redis.call('HSET', job_key(k, id), 'status', 'scheduled', 'jobctl_scheduled_for', at)
  redis.call('ZADD', queue_key(k, 'scheduled', queue), at, id)
end

-- The outcome scripts' first step: the job leaves the worker's in-flight list. This is also
-- their fence: a job no longer there was recovered (its worker presumed dead, and the job maybe
-- given to another), so the caller must write nothing and stop.
-- `active`: the worker's in-flight list; `registry`: the started registry of the job's queue.
local function leave_started(id, active, registry, attempt)
  if redis.call('LREM', active, '1', id) == 0 then return false end
  redis.call('ZREM', registry, id .. ':' .. attempt)
  return true
end

-- A started job leaves RQ's started registry, whose entry names its attempt; when the record's
-- attempt was spoiled since it started, the entry is found by its id.
local function leave_started_registry(k, id, queue, attempt)
  local registry = queue_key(k, 'started', queue)
  if whole(attempt) then
    redis.call('ZREM', registry, id .. ':' .. whole(attempt))
    return
  end
  local pattern = string.gsub(id, '[%*%?%[%]\\]', '\\%0') .. ':*'
  local cursor = '0'
  repeat
    local page = redis.call('ZSCAN', registry, cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = page[1]
    for i = 1, #page[2], 2 do redis.call('ZREM', registry, page[2][i]) end
  until cursor == '0'
end

-- A job whose hash RQ's Job wrote (its producer, or `rq requeue` saving it) carries RQ's per-job
-- options (jobctl's own jobs skip this: success_callback_name is RQ's field alone). Returns them
-- as {retries_left, retry_intervals, success, failure and stopped callback names} ('' when
-- unset), the attempt the job starts, and the fields starting it sets besides jobctl's; `write`:
-- also make the changes starting it makes (false for a reservation, which only reads).
local function rq_options(key, attempt, write)
  local job = redis.call('HMGET', key, 'ttl', 'jobctl_dead', 'retries_left', 'jobctl_retries', 'retry_intervals',
    'success_callback_name', 'failure_callback_name', 'stopped_callback_name')
  local ttl, dead, retries_left, budget = job[1], job[2], whole(job[3]), whole(job[4])
  local fields = {}
  if dead then
    -- a dead job brought back by another tool (RQ's `rq requeue`): a fresh budget, as requeue-dead gives
    attempt, retries_left = 1, budget or retries_left
    fields = {'jobctl_crashes', 0}
    if retries_left then fields = {'jobctl_crashes', 0, 'retries_left', retries_left} end
    if write then redis.call('HDEL', key, 'jobctl_dead', 'jobctl_reason') end
  end
  if retries_left and not budget then
    -- RQ's Retry(max=N): its budget, kept for a requeue to restore
    table.insert(fields, 'jobctl_retries')
    table.insert(fields, retries_left)
  end
  -- RQ's ttl (how long a job may wait) no longer applies once the job started, as in RQ
  if write and (ttl or dead) then redis.call('PERSIST', key) end
  return {tostring(retries_left or ''), job[5] or '', job[6] or '', job[7] or '', job[8] or ''}, attempt, fields
end

-- What taking a job reads of it, in one HMGET: first what starting it needs (the first
-- START_FIELDS: a reserved job is started from these alone), then what its previous attempt left
-- (cleared as it is taken: see job_start) and what its row adds. Each field a job hash lacks costs
-- a scan of the whole hash (a small one is a listpack): a reserved job's start reads the fewest.
local JOB_FIELDS = {'origin', 'status', 'timeout', 'jobctl_timeout', 'jobctl_attempts', 'success_callback_name',
  'jobctl_job', 'jobctl_progress', 'jobctl_stop_requested', 'data', 'jobctl_max_retries', 'created_at'}
local START_FIELDS = 7

-- Take the next job a worker may start: the first job of the first queue in `queues` (the worker
-- leaves out paused ones; their keys passed in k.by_queue) that is not over its rate limit, and,
-- with `start`, that its type's limits let start (see may_start), moved into the worker's
-- in-flight list (k.active_list) with its status still 'queued'. Without `start` (a job reserved
-- ahead, see go_on) its limits are left for when it starts: a reservation holds no slot, no rate
-- window entry and no breaker trial. Returns its id, the queue it came from and its JOB_FIELDS,
-- or nil when there is nothing to run.
local function take_next(k, worker, now, queues, start)
  local active = k.active_list
  local held_back = 0
  while held_back < MAX_HELD_BACK do
    local id, from = false, nil
    for _, queue in ipairs(queues) do
      local passed = k.by_queue[queue]
      if next(limits) == nil or rate_allows('rate:queue:' .. queue, passed.rate, now) then
        id = redis.call('LMOVE', passed.queue, active, 'LEFT', 'RIGHT')
        if id then from = queue break end
      end
    end
    if not id then return nil end
    local job = redis.call('HMGET', job_key(k, id), unpack(JOB_FIELDS))
    local status = job[2]
    if status == 'queued' and job[1] ~= from then
      -- the queue it was found on is its origin: a record without one (another tool's) or with
      -- another (spoiled) is given it before anything else, so that a reservation recovered,
      -- canceled or held back is found on a queue (it was lost in no list without one)
      redis.call('HSET', job_key(k, id), 'origin', from)
      job[1] = from
    end
    local hold_until = status == 'queued' and start and may_start(k, id, job[7], from, worker, now) or 0
    if hold_until > 0 then
      hold_back(k, id, from, hold_until)
      held_back = held_back + 1
    elseif status == 'queued' then
      return id, from, job
    end
    -- held back, canceled, expired or a stale duplicate entry: not run now, drop it and look again
    redis.call('LREM', active, 1, id)
  end
  return nil
end

-- Mark a taken job started: status 'started' in its hash, its `deadline` and `attempt` (as text),
-- and its entry in RQ's started registry, of score `score` (its deadline and a minute more, as
-- RQ's); `rq_fields`: the fields RQ's options add (rq_options), or nil.
local function mark_started(k, id, queue, worker, now_iso, deadline, score, attempt, rq_fields)
  local fields = {'status', 'started', 'started_at', now_iso, 'worker_name', worker, 'last_heartbeat', now_iso,
    'ended_at', '', 'jobctl_deadline', deadline, 'jobctl_attempts', attempt}
  if rq_fields then
    for _, value in ipairs(rq_fields) do table.insert(fields, value) end
  end
  redis.call('HSET', job_key(k, id), unpack(fields))
  redis.call('ZADD', queue_key(k, 'started', queue), score, id .. ':' .. attempt)
end

-- A taken job's queue, timeout, attempt and RQ options {retries_left, retry_intervals, success,
-- failure and stopped callback names} ('' for jobctl's own jobs). With `start`, the job is also
-- started: status 'started' in its hash and RQ's started registry, its deadline set from `now`.
local function job_start(k, id, from, job, worker, now, now_iso, start)
  local key = job_key(k, id)
  local queue = from  -- its origin (take_next made it so)
  local timeout = finite(job[4]) or finite(job[3]) or 180  -- jobctl_timeout: exact, 1.5 stays 1.5
  if timeout > 1e9 then timeout = 0 end  -- over 30 years: none (a timer cannot be set that far)
  local attempt = (whole(job[5]) or 0) + 1
  local rq, rq_fields = '', nil
  if job[6] then rq, attempt, rq_fields = rq_options(key, attempt, start) end
  -- the previous attempt's progress and stop request go as the job is taken, reserved or started:
  -- nothing writes them while it is queued, so a reserved job's start need not read them
  if job[8] or job[9] then redis.call('HDEL', key, 'jobctl_progress', 'jobctl_progress_message', 'jobctl_stop_requested') end
  if start then
    -- RQ's job_timeout -1: no timeout
    local deadline, score = '+inf', '+inf'
    if timeout > 0 then deadline, score = now + timeout, now + timeout + 60 end
    -- its attempt written out once, as an integer: Redis writes a Lua number out with printf's %.17g
    mark_started(k, id, queue, worker, now_iso, deadline, score, string.format('%d', attempt), rq_fields)
  end
  return queue, timeout, attempt, rq
end

-- The row a worker runs a taken job from (see job_start): {id, queue, attempt, data, timeout,
-- max_retries, created_at, rq}.
local function job_row(k, id, from, job, worker, now, now_iso, start)
  local queue, timeout, attempt, rq = job_start(k, id, from, job, worker, now, now_iso, start)
  -- the timeout as a string: a Lua number in a reply loses its fraction
  return {id, queue, attempt, job[10] or '', tostring(timeout), tostring(whole(job[11]) or ''), job[12] or '', rq}
end

-- Start the next job for a worker (see take_next): its row, or false when there is none.
local function start_next(k, worker, now, now_iso, queues)
  local id, from, job = take_next(k, worker, now, queues, true)
  if not id then return false end
  return job_row(k, id, from, job, worker, now, now_iso, true)
end

-- Start up to `count` jobs for a worker (start_next): their rows, as many as there were.
local function start_jobs(k, worker, now, now_iso, queues, count)
  local rows = {}
  for _ = 1, count do
    local row = start_next(k, worker, now, now_iso, queues)
    if not row then break end
    table.insert(rows, row)
  end
  return rows
end

-- Start the job a worker reserved (see go_on): its attempt; false when the job is no longer
-- queued (canceled or deleted since: the worker then records nothing for it); 0 when its limits
-- hold it back (may_start: it waits in the scheduled set, its attempt unused, and the worker does
-- not run it). `as_reserved`: the attempt the worker runs it as and the deadline and started-
-- registry score of the timeout it runs with (both from its reservation's row: transitions.py,
-- GoOn.started_with), given for a job none of its limits may hold back, or nil: they come from
-- its record. Given, only its status is read: what else the reservation read does not change
-- while the job waits in the worker's in-flight list (a cancel changes its status).
local function start_reserved(k, id, queue, worker, now, now_iso, as_reserved)
  if as_reserved then
    if redis.call('HGET', job_key(k, id), 'status') ~= 'queued' then
      redis.call('LREM', k.active_list, 1, id)
      return false
    end
    mark_started(k, id, queue, worker, now_iso, as_reserved.deadline, as_reserved.score, as_reserved.attempt, nil)
    return as_reserved.attempt
  end
  local job = redis.call('HMGET', job_key(k, id), unpack(JOB_FIELDS, 1, START_FIELDS))
  local hold_until = job[2] == 'queued' and may_start(k, id, job[7], queue, worker, now) or 0
  if job[2] ~= 'queued' or hold_until > 0 then
    redis.call('LREM', k.active_list, 1, id)
    if hold_until == 0 then return false end
    hold_back(k, id, queue, hold_until)
    return 0
  end
  local _, _, attempt = job_start(k, id, queue, job, worker, now, now_iso, true)
  return attempt
end

-- How the outcome scripts go on after recording a job, as the worker's arguments say:
--   args.queues: the queues to go on from (empty: the worker stops after this job);
--   args.start, args.start_queue: the job reserved last time, which the worker started at
--     args.now: mark it started (the reply's first item: its attempt, or false); args.as_reserved:
--     its attempt, deadline and started-registry score, from its reservation (start_reserved);
--   otherwise a job is started here (its row, after the reserved ones: see the reply below);
--   args.reserve: also take up to this many more jobs and reserve them, unstarted (their rows
--     in the reply), for the worker to start without waiting when this one ends (the
--     worker's `prefetch`). A worker running short jobs one at a time thus never waits for
--     Redis between jobs; it gives its reservations back when its job runs long (release.lua).
--   args.limits: the worker's rate and concurrency limits (see `limits`).
-- go_on_args reads them from ARGV[first] on: start ('' for none), start_queue, its attempt,
-- deadline and score ('' for none), reserve (a count), limits (JSON; '' for none), then the
-- queues (transitions.py, GoOn.arguments).
-- Positional, not one JSON object: decoding that cost more than the rest of the call's
-- arguments together (callgrind).
local function go_on_args(argv, first, worker, now, now_iso)
  local queues = {}
  for i = first + 7, #argv do queues[#queues + 1] = argv[i] end
  local start, attempt, limits_json = argv[first], argv[first + 2], argv[first + 6]
  local as_reserved = attempt ~= '' and {attempt = attempt, deadline = argv[first + 3], score = argv[first + 4]} or nil
  return {worker = worker, now = now, now_iso = now_iso, start = start ~= '' and start or nil,
    start_queue = argv[first + 1], as_reserved = as_reserved, reserve = tonumber(argv[first + 5]) or 0, queues = queues,
    limits = limits_json ~= '' and cjson.decode(limits_json) or {}}
end

-- The queues whose keys the caller passes (queue_keys): args.queues, then args.start_queue when
-- it is not one of them (GoOn.keyed).
local function go_on_queues(args)
  if not args.start then return args.queues end
  for _, queue in ipairs(args.queues) do
    if queue == args.start_queue then return args.queues end
  end
  local queues = {unpack(args.queues)}
  table.insert(queues, args.start_queue)
  return queues
end

-- go_on's reply is flat: {started, breaker, n, the rows of the n jobs it reserved, then those of
-- the jobs it started}, ROW_WIDTH items a row (job_row); the caller sets `breaker` ('' here) and
-- may add rows (transitions.py, Next.of). A table in a reply costs Redis more to write out than
-- its items: nested, the reply of a worker's outcome call took 11,000 more instructions.
local ROW_WIDTH = 8

local function add_row(reply, row)
  local n = #reply
  for i = 1, ROW_WIDTH do reply[n + i] = row[i] end
end

-- k.by_queue holds the keys of go_on_queues(args).
local function go_on(k, args)
  limits = args.limits
  local worker, now, now_iso = args.worker, args.now, args.now_iso
  local started, row = false, false
  if args.start then
    started = start_reserved(k, args.start, args.start_queue, worker, now, now_iso, args.as_reserved)
  elseif #args.queues > 0 then
    row = start_next(k, worker, now, now_iso, args.queues)
  end
  local reply = {started, '', 0}
  if #args.queues > 0 then
    for _ = 1, args.reserve do
      local id, from, job = take_next(k, worker, now, args.queues, false)
      if not id then break end
      add_row(reply, job_row(k, id, from, job, worker, now, now_iso, false))
      reply[3] = reply[3] + 1
    end
  end
  if row then add_row(reply, row) end
  return reply
end

-- Give back what a gone worker held. cause: 'crash' or 'shutdown'; crash_limit: for jobs that
-- do not carry their own; how: 'worker killed by signal 9 (SIGKILL)', ...; culprit_list: when
-- not empty (the worker was killed for these jobs' overruns), only they count a crash, and the
-- other jobs it held go back as on a shutdown.
-- A job interrupted by a crash goes back to the front of its queue and counts the crash; at
-- crash_limit crashes it is dead (a poison pill must not crash-loop the fleet). Interrupted
-- attempts do not use up the job's retries. A job an operator asked to stop ends canceled.
-- The worker's hash and in-flight list: `worker_key`, `active` (k.worker and k.active are not
-- used for them). Returns {requeued, buried}.
local function recover_worker(k, worker, worker_key, active, now, now_iso, cause, crash_limit, how, culprit_list)
  local culprits = {}
  for _, id in ipairs(culprit_list) do culprits[id] = true end
  local blame_all = #culprit_list == 0
  local queues = redis.call('HGET', worker_key, 'queues') or ''
  local requeued, buried = 0, 0

  while true do
    local id = redis.call('RPOP', active)
    if not id then break end
    local status = hget(k, id, 'status')
    local queue = hget(k, id, 'origin')
    if (status == 'started' or status == 'queued') and queue then
      local key = job_key(k, id)
      if status == 'started' then
        leave_started_registry(k, id, queue, hget(k, id, 'jobctl_attempts'))
        redis.call('HSET', key, 'jobctl_attempts', (whole(hget(k, id, 'jobctl_attempts')) or 1) - 1)
        redis.call('HDEL', key, 'jobctl_deadline')
      end
      release_slot(k, id, hget(k, id, 'jobctl_slot'))  -- a reserved job holds one too
      local crashes = 0
      if status == 'started' and hget(k, id, 'jobctl_stop_requested') then
        incr(key, 'jobctl_attempts', 1)
        cancel(k, id, 'canceled while running (' .. how .. ')', now, now_iso)
        settle_dependents(k, id, now, now_iso)
      else
        if cause == 'crash' and status == 'started' and (blame_all or culprits[id]) then
          crashes = incr(key, 'jobctl_crashes', 1)
          stats_count(k, hget(k, id, 'jobctl_job') or 'unknown', queue, 'crashes', 1)
          add_error(k, id, {attempt = whole(hget(k, id, 'jobctl_attempts')) + 1, at = now, error = how, worker = worker})
        end
        if crashes > 0 and crashes >= (finite(hget(k, id, 'jobctl_crash_limit')) or crash_limit) then
          incr(key, 'jobctl_attempts', 1)
          local reason = how .. ' ' .. crashes .. (crashes == 1 and ' time' or ' times')
          -- RQ's readers (rq-dashboard, Job.latest_result) show this as the job's exception
          redis.call('HSET', key, 'exc_info', reason)
          bury(k, id, queue, reason, now, now_iso)
          buried = buried + 1
        else
          push_queued(k, id, queue, now_iso, true)
          requeued = requeued + 1
        end
      end
    end
  end

  for queue in string.gmatch(queues, '[^,]+') do
    redis.call('SREM', queue_key(k, 'workers_of_queue', queue), worker_key)
  end
  -- on a cluster RQ's fleet-wide set of workers is in no queue's slot: the worker, or whoever
  -- recovered it, takes it out of that set itself
  if not CLUSTER then redis.call('SREM', k.workers, worker_key) end
  redis.call('SREM', k.active_workers, worker)
  redis.call('DEL', worker_key)
  return {requeued, buried}
end
