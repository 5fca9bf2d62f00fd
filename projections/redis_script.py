"""The Lua script the Redis target runs: one call per batch (projections.redis_target)."""

LUA = r"""
-- Mode 'cas' (a batch): KEYS[1] checkpoint key, KEYS[2] stream-seq key; for a worker's
--   partition (epoch given) KEYS[3] the partition's epoch key, KEYS[4] the context checkpoint.
--   ARGV: 'cas', expected checkpoint, key prefix, channel ('' for none), payload head, lease
--   epoch ('' for the single projector), then (position, stream seq, partition NN,
--   operations JSON) per event, positions increasing.
--   Events at or below the checkpoint are skipped (duplicates); so are events at or below
--   their partition's checkpoint (KEYS[1]:pNN, what workers applied) for the single
--   projector, and the context checkpoint covers every partition for a worker. The others
--   are applied in order. The checkpoint moves to the last one, and the payload head ..
--   position .. '}' is PUBLISHed on the channel, once per call. A worker's epoch below the
--   one that last wrote the partition is refused: {0, -4, ''}, nothing written (fencing).
--   Returns {n, 1, ''}: done (n new events); {0, -1, ''}: the checkpoint is not as expected
--   (nothing written); {n, -2, reason}: the (n+1)-th new event's bind found nothing;
--   {n, -3, reason}: Redis would refuse one of that event's writes (a key of another type, a
--   field that is not an integer, an increment beyond 64 bits, a list field holding no JSON
--   list). Either way the n before it are applied, the checkpoint after them, and nothing of
--   it is written.
-- An event applies whole or not at all: its binds are read, then every write but the first
--   is checked against what its key holds, or will hold after the event's writes before it,
--   all before the first write is made (a script runs alone: nothing changes in between).
--   The first needs no check: if Redis refuses it, nothing of the event is written yet. The
--   checks cover what these commands refuse on data; a later write failing all the same (none
--   should) would also reply -3, and the event's writes before it would stay.
-- Mode 'once' (a retried dead letter): KEYS[1] retry marker; ARGV: 'once', '', key prefix, '',
--   '', position, '', operations JSON. Applies once, whatever the checkpoint: {1, 1, ''}, or
--   {0, 1, ''} if it was before; {0, -2 or -3, reason} as above.
local mode, prefix = ARGV[1], ARGV[3]
local vars
local function text(x)
  if type(x) == 'table' then return (string.gsub(x.t, '{([%w_]+)}', vars)) end
  return x
end
local function value(x)
  if type(x) ~= 'table' then return x end
  local v = vars[x.var]
  if x.neg and v ~= '0' then
    if string.sub(v, 1, 1) == '-' then return string.sub(v, 2) end
    return '-' .. v
  end
  return v
end
-- key -> 'hash' or 'zset': what it holds, or will once the writes planned so far are made (a
-- batch stops at a refused event, so what that one planned is never relied on)
local kinds = {}
-- key -> the event's writes to it planned so far, in order (an increment's with the field's
-- new value as `total`)
local pending
local function not_a(key, wanted)
  return 'WRONGTYPE ' .. key .. ' is not a ' .. wanted
end
local function check_type(key, wanted, first)
  -- why `key` cannot take a write of type `wanted`, or nil; the event's first write is not
  -- checked: if Redis refuses it, nothing of the event is written
  local held = kinds[key]
  if not held then
    held = first and wanted or redis.call('TYPE', key).ok
    if held == 'none' then held = wanted end
    kinds[key] = held
  end
  if held ~= wanted then return not_a(key, wanted) end
end
local function planned(key, field)
  -- what the last planned write of `field` writes there, or nil
  local writes = pending[key]
  if not writes then return nil end
  for i = #writes, 1, -1 do
    local write = writes[i]
    if write.total then
      if write[3] == field then return write.total end
    else
      for j = #write - 1, 3, -2 do
        if write[j] == field then return write[j + 1] end
      end
    end
  end
end
local function field_of(key, field)
  -- the field's value once the writes planned so far are made (false: none), or nil and why
  -- `key` holds no fields; the read checks the type of a key not met before
  local held = planned(key, field)
  if held then return held end
  if kinds[key] and kinds[key] ~= 'hash' then return nil, not_a(key, 'hash') end
  local found = redis.pcall('HGET', key, field)
  if type(found) == 'table' then return nil, not_a(key, 'hash') end
  kinds[key] = 'hash'
  return found
end
local function remember(key, write)
  local writes = pending[key]
  if writes then
    writes[#writes + 1] = write
  else
    pending[key] = {write}
  end
  return write
end
-- A 64-bit integer as two exact doubles, hi * 1e9 + lo, each with its sign: a double holds
-- an integer exactly only up to 2^53.
local BILLION = 1e9
local function int64(text)
  -- `text` as Redis reads an integer (no '+', no leading zero), else nil
  if text == '0' then return 0, 0 end
  local sign, digits = string.match(text, '^(%-?)([1-9]%d*)$')
  if not digits or #digits > 19 then return nil end
  local hi, lo = tonumber(string.sub(digits, 1, -10)) or 0, tonumber(string.sub(digits, -9))
  if sign == '-' then hi, lo = -hi, -lo end
  if hi > 9223372036 or hi < -9223372036 then return nil end
  if hi == 9223372036 and lo > 854775807 or hi == -9223372036 and lo < -854775808 then
    return nil
  end
  return hi, lo
end
local function sum_text(a_hi, a_lo, b_hi, b_lo)
  -- a + b in decimal, or nil outside 64 bits
  local hi, lo = a_hi + b_hi, a_lo + b_lo
  if lo >= BILLION then
    hi, lo = hi + 1, lo - BILLION
  elseif lo <= -BILLION then
    hi, lo = hi - 1, lo + BILLION
  end
  if hi > 0 and lo < 0 then
    hi, lo = hi - 1, lo + BILLION
  elseif hi < 0 and lo > 0 then
    hi, lo = hi + 1, lo - BILLION
  end
  local text = hi == 0 and string.format('%d', lo) or string.format('%d%09d', hi, math.abs(lo))
  if int64(text) then return text end
end
local function encode_list(items)
  if #items == 0 then return '[]' end
  -- cjson writes '/' as '\/'; plain '/' keeps the text equal to the SQL executor's JSON
  return (string.gsub(cjson.encode(items), '\\/', '/'))
end
local function edit_list(raw, kind, item)
  -- the JSON list `raw` (false: []) with `item` pushed or its first copy pulled; an error if
  -- `raw` holds no JSON list or the result cannot be written back
  if raw and not string.find(raw, '^%s*%[') then error('not a list') end
  local items = raw and cjson.decode(raw) or {}
  if kind == 'push' then
    items[#items + 1] = item
  else
    for i, held in ipairs(items) do
      if held == item then
        table.remove(items, i)
        break
      end
    end
  end
  return encode_list(items)
end
-- Each planner checks one operation against what its key holds and returns the write it
-- makes, or nil and why Redis would refuse it; `first`: no write of the event comes before.
local function plan_set(op, first)
  if #op <= 2 then return nil end
  local key = prefix .. text(op[2])
  local refused = check_type(key, 'hash', first)
  if refused then return nil, refused end
  local write = {'HSET', key}
  for i = 3, #op, 2 do
    write[#write + 1] = op[i]
    write[#write + 1] = value(op[i + 1])
  end
  return remember(key, write)
end
local function plan_incr(op)
  local key, field, amount = prefix .. text(op[2]), text(op[3]), value(op[4])
  local held, refused = field_of(key, field)
  if refused then return nil, refused end
  local by_hi, by_lo = int64(amount)
  if not by_hi then return nil, 'ERR increment ' .. amount .. ' is not an integer of 64 bits' end
  local hi, lo = int64(held or '0')
  if not hi then return nil, 'ERR ' .. key .. ' field ' .. field .. ' is not an integer' end
  local total = sum_text(hi, lo, by_hi, by_lo)
  if not total then
    return nil, 'ERR ' .. key .. ' field ' .. field .. ' would overflow 64 bits'
  end
  return remember(key, {'HINCRBY', key, field, amount, total = total})
end
local function plan_zincr(op, first)
  -- a finite increment leaves a score a number (only inf - inf is NaN)
  local key, member, amount = prefix .. text(op[2]), text(op[3]), value(op[4])
  local refused = check_type(key, 'zset', first)
  if refused then return nil, refused end
  if not int64(amount) then
    return nil, 'ERR score increment ' .. amount .. ' is not an integer of 64 bits'
  end
  return {'ZINCRBY', key, amount, member}
end
local function plan_list(op)
  local key, field = prefix .. text(op[2]), op[3]
  local raw, refused = field_of(key, field)
  if refused then return nil, refused end
  local ok, edited = pcall(edit_list, raw, op[1], op[4])
  if not ok then return nil, 'ERR ' .. key .. ' field ' .. field .. ' is not a JSON list' end
  return remember(key, {'HSET', key, field, edited})
end
local planners = {
  set = plan_set, incr = plan_incr, zincr = plan_zincr, push = plan_list, pull = plan_list,
}
local function bind(ops)
  -- nil once every bind found its field, else the outcome code and reason
  vars = {}
  for _, op in ipairs(ops) do
    if op[1] == 'bind' then
      local key = prefix .. op[2]
      for i = 3, #op do
        local found = redis.pcall('HGET', key, op[i])
        if type(found) == 'table' then return -3, not_a(key, 'hash') end
        if not found then return -2, op[2] .. ' has no ' .. op[i] end
        vars[op[i]] = found
      end
      kinds[key] = 'hash'
    end
  end
end
local function plan(ops)
  pending = {}
  local writes = {}
  for _, op in ipairs(ops) do
    local planner = planners[op[1]]
    if planner then
      local write, refused = planner(op, #writes == 0)
      if refused then return nil, refused end
      if write then writes[#writes + 1] = write end
    end
  end
  return writes
end
local function apply(ops)
  -- nil once applied, else the outcome code (-2, -3) and reason (see above)
  local code, reason = bind(ops)
  if code then return code, reason end
  local writes, refused = plan(ops)
  if refused then return -3, refused end
  for _, write in ipairs(writes) do
    local failed = redis.pcall(unpack(write))
    if type(failed) == 'table' and failed.err then
      -- none but the first write should fail, and nothing was written before that one
      return -3, failed.err .. ' (' .. write[1] .. ' ' .. write[2] .. ')'
    end
  end
end
local function apply_whole(ops)
  local ok, code, reason = pcall(apply, ops)
  if ok then return code, reason end
  -- a Lua error, which only the checks could raise (none is expected): nothing written
  return -3, type(code) == 'table' and code.err or tostring(code)
end
if mode == 'once' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 1, ''} end
  local code, reason = apply_whole(cjson.decode(ARGV[8]))
  if code then return {0, code, reason} end
  redis.call('SET', KEYS[1], '1')
  return {1, 1, ''}
end
local epoch = ARGV[6]
local ckpt = tonumber(redis.call('GET', KEYS[1]) or '0')
local floors = nil
if epoch ~= '' then
  if tonumber(redis.call('GET', KEYS[3]) or '0') > tonumber(epoch) then return {0, -4, ''} end
  local whole = tonumber(redis.call('GET', KEYS[4]) or '0')
  if whole > ckpt then ckpt = whole end
else
  floors = {}
end
local function floor_of(partition)
  if floors == nil then return 0 end
  local found = floors[partition]
  if found == nil then
    found = tonumber(redis.call('GET', KEYS[1] .. ':p' .. partition) or '0')
    floors[partition] = found
  end
  return found
end
local done, last, last_seq, checked = 0, nil, nil, false
local outcome, reason = 1, ''
for i = 7, #ARGV, 4 do
  local position = tonumber(ARGV[i])
  if position > ckpt then
    if not checked and ckpt ~= tonumber(ARGV[2]) then return {0, -1, ''} end
    checked = true
    if position > floor_of(ARGV[i + 2]) then
      local code, refused = apply_whole(cjson.decode(ARGV[i + 3]))
      if code then
        outcome, reason = code, refused
        break
      end
    end
    done, ckpt, last, last_seq = done + 1, position, ARGV[i], ARGV[i + 1]
  end
end
if last then
  redis.call('SET', KEYS[1], last)
  redis.call('SET', KEYS[2], last_seq)
  if epoch ~= '' then redis.call('SET', KEYS[3], epoch) end
  if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4], ARGV[5] .. last .. '}') end
end
return {done, outcome, reason}
"""
