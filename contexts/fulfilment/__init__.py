"""The fulfilment context (issue 9): the OrderFulfilment saga, which takes a placed order through
payment and shipping, and compensates in reverse when a step fails or times out.

- `ids`: the saga's, payment's and shipment's ids, derived from the order id.
- `definition`: the steps, the policy (deadlines) and the values the saga hands out.
- `domain`: the saga itself, a pure event-sourced state machine (its docstring has the rules).
"""
