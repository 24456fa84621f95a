"""The Lua scripts that move tasks between states atomically in Redis.

Each script makes one move of `model.TRANSITIONS` and everything that must go with it
(acknowledge, delete the stream entry, hand the conversation to its next task) in one
step, so a crash between two commands can never leave a task acknowledged without its
result, or a conversation held by a finished task.

Who holds a running task is the consumer group's own record: the entry's owner in the
pending entries list (PEL). A worker renews its lease by re-claiming its own entries
(`XCLAIM ... JUSTID` resets their idle time, and only the owner may do it); an entry
idle for longer than the lease therefore belongs to a worker that stopped renewing, and
`XAUTOCLAIM` with the lease as minimum idle time takes exactly those. Time is Redis's
own clock, so workers' clocks never disagree about a deadline.

Like the conversation store, the scripts assume one Redis (not Redis Cluster): a few
names are read from the task's record inside the script.
"""

from __future__ import annotations

_HELPERS = """
local function owner(stream, group, entry)
  local p = redis.call('XPENDING', stream, group, entry, entry, 1)
  if p[1] then return p[1][2] end
  return false
end

local function drop(stream, group, entry)
  redis.call('XACK', stream, group, entry)
  redis.call('XDEL', stream, entry)
end

-- Give the conversation of `task_key` to its next waiting task, or free it.
local function release(stream, task_key, counter, prefix)
  local holder = redis.call('HGET', task_key, 'hkey')
  if not holder or holder == '' then return end
  if redis.call('GET', holder) ~= redis.call('HGET', task_key, 'id') then return end
  local nxt = redis.call('LPOP', redis.call('HGET', task_key, 'wkey'))
  if nxt then
    redis.call('DECR', counter)
    redis.call('SET', holder, nxt)
    local e = redis.call('XADD', stream, '*', 'task', nxt)
    redis.call('HSET', prefix .. nxt, 'status', 'queued', 'entry', e)
  else
    redis.call('DEL', holder)
  end
end

-- A final state: store the outcome, start the retention clock, ack, free the conversation.
local function finalize(stream, group, task_key, entry, counter, prefix, status, field, value,
                        now, retention)
  redis.call('HSET', task_key, 'status', status, 'finished', now, field, value, 'worker', '')
  redis.call('EXPIRE', task_key, retention)
  local ikey = redis.call('HGET', task_key, 'ikey')
  if ikey and ikey ~= '' then redis.call('EXPIRE', ikey, retention) end
  drop(stream, group, entry)
  release(stream, task_key, counter, prefix)
end

local function dead_letter(stream, group, dead, task_key, entry, counter, prefix, reason, now,
                           retention, maxlen)
  redis.call('XADD', dead, 'MAXLEN', '~', maxlen, '*',
    'task', redis.call('HGET', task_key, 'id'),
    'tenant', redis.call('HGET', task_key, 'tenant'),
    'deliveries', redis.call('HGET', task_key, 'deliveries'),
    'error', reason, 'at', now)
  finalize(stream, group, task_key, entry, counter, prefix, 'dead', 'error', reason, now,
           retention)
end
"""

# KEYS: stream, task record, waiting counter.
# ARGV: idempotency name or '', conversation holder name or '', its waiting list or '',
#       fingerprint, task id, task prefix, then the record's field/value pairs.
# Returns {0, id} (the key's task, same work), {2, id} (the key's task, other work) or
# {1, id, status} (created: queued, or waiting behind its conversation's task).
ENQUEUE = """
local ikey, hkey, wkey, fp, id, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if ikey ~= '' then
  local existing = redis.call('GET', ikey)
  if existing then
    local efp = redis.call('HGET', prefix .. existing, 'fp')
    if efp == fp then return {0, existing} end
    if efp then return {2, existing} end
  end
end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], 'ikey', ikey, 'hkey', hkey, 'wkey', wkey, unpack(fields))
if ikey ~= '' then redis.call('SET', ikey, id) end
if hkey ~= '' then
  if redis.call('EXISTS', hkey) == 1 then
    redis.call('RPUSH', wkey, id)
    redis.call('INCR', KEYS[3])
    redis.call('HSET', KEYS[2], 'status', 'waiting')
    return {1, id, 'waiting'}
  end
  redis.call('SET', hkey, id)
end
local e = redis.call('XADD', KEYS[1], '*', 'task', id)
redis.call('HSET', KEYS[2], 'status', 'queued', 'entry', e)
return {1, id, 'queued'}
"""

# KEYS: stream, task record, dead-letter stream, waiting counter.
# ARGV: group, entry, consumer, max deliveries, now, retention, task prefix, dead maxlen.
# Returns {'run', record...}, {'dead', reason} or {'skip', why} (already finished,
# expired, or an entry the task was moved away from).
START = (
    _HELPERS
    + """
local stream, task, dead, counter = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, entry, consumer = ARGV[1], ARGV[2], ARGV[3]
local status = redis.call('HGET', task, 'status')
if not status then drop(stream, group, entry) return {'skip', 'gone'} end
if redis.call('HGET', task, 'entry') ~= entry or (status ~= 'queued' and status ~= 'running')
then
  drop(stream, group, entry)
  return {'skip', status}
end
local deliveries = tonumber(redis.call('HGET', task, 'deliveries') or '0')
if deliveries >= tonumber(ARGV[4]) then
  local reason = 'given up after ' .. deliveries .. ' deliveries'
  local last = redis.call('HGET', task, 'error')
  if last and last ~= '' then reason = reason .. '; last error: ' .. last
  else reason = reason .. ': its workers stopped without finishing it' end
  dead_letter(stream, group, dead, task, entry, counter, ARGV[7], reason, ARGV[5], ARGV[6],
              ARGV[8])
  return {'dead', reason}
end
redis.call('HINCRBY', task, 'deliveries', 1)
redis.call('HSET', task, 'status', 'running', 'worker', consumer, 'started', ARGV[5])
local out = redis.call('HGETALL', task)
table.insert(out, 1, 'run')
return out
"""
)

# KEYS: stream, task record, waiting counter.
# ARGV: group, entry, consumer, status (succeeded|failed), field (result|error), value,
#       now, retention, task prefix. Returns 1, or 0 if this worker no longer holds it.
FINISH = (
    _HELPERS
    + """
local stream, task, counter = KEYS[1], KEYS[2], KEYS[3]
local group, entry, consumer = ARGV[1], ARGV[2], ARGV[3]
if owner(stream, group, entry) ~= consumer then return 0 end
if redis.call('HGET', task, 'status') ~= 'running' or redis.call('HGET', task, 'entry') ~= entry
then return 0 end
finalize(stream, group, task, entry, counter, ARGV[9], ARGV[4], ARGV[5], ARGV[6], ARGV[7],
         ARGV[8])
return 1
"""
)

# KEYS: stream, task record, dead-letter stream, waiting counter.
# ARGV: group, entry, consumer, counted ('1': a failed delivery, '0': handed back on
#       drain), error or '', max deliveries, now, retention, task prefix, dead maxlen.
# Returns 'queued', 'dead', or 'lost' (this worker no longer holds it).
REQUEUE = (
    _HELPERS
    + """
local stream, task, dead, counter = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, entry, consumer = ARGV[1], ARGV[2], ARGV[3]
if owner(stream, group, entry) ~= consumer then return 'lost' end
if redis.call('HGET', task, 'status') ~= 'running' or redis.call('HGET', task, 'entry') ~= entry
then return 'lost' end
if ARGV[5] ~= '' then redis.call('HSET', task, 'error', ARGV[5]) end
local deliveries = tonumber(redis.call('HGET', task, 'deliveries') or '0')
if ARGV[4] == '0' then
  redis.call('HSET', task, 'deliveries', math.max(0, deliveries - 1))
elseif deliveries >= tonumber(ARGV[6]) then
  dead_letter(stream, group, dead, task, entry, counter, ARGV[9],
              'given up after ' .. deliveries .. ' deliveries; last error: ' .. ARGV[5],
              ARGV[7], ARGV[8], ARGV[10])
  return 'dead'
end
drop(stream, group, entry)
local e = redis.call('XADD', stream, '*', 'task', redis.call('HGET', task, 'id'))
redis.call('HSET', task, 'status', 'queued', 'entry', e, 'worker', '')
return 'queued'
"""
)

# KEYS: stream. ARGV: group, consumer, entries... Returns the entries still held (their
# lease renewed); the others were taken over by another worker.
RENEW = """
local held = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    held[#held + 1] = ARGV[i]
  end
end
return held
"""

# KEYS: stream, waiting counter. ARGV: group.
# Returns {entries in the stream, of which delivered and not finished, tasks waiting
# behind their conversation, id of the oldest entry not yet delivered or false}.
DEPTH = """
local len = redis.call('XLEN', KEYS[1])
local waiting = tonumber(redis.call('GET', KEYS[2]) or '0')
if len == 0 then return {0, 0, waiting, false} end
local pending, last = 0, '0-0'
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if ok then
  for _, g in ipairs(groups) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == ARGV[1] then
      pending, last = info['pending'], info['last-delivered-id']
    end
  end
end
local first = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', 1)
local oldest = false
if first[1] then oldest = first[1][1] end
return {len, pending, waiting, oldest}
"""
