-- demo.sql — the demo's services, its workflow and its subscriptions: one business flow, both styles.

CREATE SCHEMA IF NOT EXISTS demo;
CREATE TABLE IF NOT EXISTS demo.notifications (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id text NOT NULL,
    message  text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);

-- One queue per service (per style, so the progress display can tell them apart).
SELECT baton.create_queue(q, max_attempts => 3, backoff_base => '200 milliseconds', if_not_exists => true)
  FROM unnest(ARRAY['inventory', 'payments', 'refunds', 'packing', 'shipping', 'notify',
                    'c.inventory', 'c.payments', 'c.shipping', 'c.notify']) AS q;

-- Orchestration: the database is the conductor.
--   reserve --> charge --\
--          \--> pack ----+--> ship --> notify       (pack: one task per item)
-- If a step fails for good, the run fails and the completed steps' compensations run in
-- reverse order (saga): a declined card releases the reserved stock.
SELECT baton.define_workflow('order_fulfilment', $json$
{"steps": {
  "reserve": {"queue": "inventory", "input": {"action": "reserve", "order": "$.input"},
              "compensate": {"queue": "inventory", "input": {"action": "release", "order": "$.input"}}},
  "charge":  {"queue": "payments", "after": ["reserve"], "input": {"order": "$.input"},
              "compensate": {"queue": "refunds", "input": {"charge": "$.steps.charge.output"}}},
  "pack":    {"queue": "packing", "after": ["reserve"], "map": "$.input.items"},
  "ship":    {"queue": "shipping", "after": ["charge", "pack"],
              "input": {"order": "$.input", "boxes": "$.steps.pack.output"}},
  "notify":  {"queue": "notify", "after": ["ship"],
              "input": {"order": "$.input.id", "tracking": "$.steps.ship.output.tracking"}}
}}
$json$);

-- Choreography: no conductor. Each service subscribes to the events it cares about and its
-- success or failure is published as a token that the next service reacts to.
--   order.placed --> inventory --(inventory.reserved)--> payments --(payment.charged)--> shipping
--                                                          \--(payment.failed)--> inventory releases
SELECT baton.subscribe('inventory-reserves', 'order.placed', queue => 'c.inventory',
                       on_success => 'inventory.reserved', on_failure => 'inventory.failed', replace => true);
SELECT baton.subscribe('payments-charge', 'inventory.reserved', queue => 'c.payments',
                       on_success => 'payment.charged', on_failure => 'payment.failed', replace => true);
SELECT baton.subscribe('shipping-ships', 'payment.charged', queue => 'c.shipping',
                       on_success => 'order.shipped', replace => true);
SELECT baton.subscribe('inventory-releases', 'payment.failed', queue => 'c.inventory', replace => true);
SELECT baton.subscribe('notify-shipped', 'order.shipped', queue => 'c.notify', replace => true);
