-- console_seed.sql — seeded data for the console tests (CLI and dashboard): queues, tasks in every state, a workflow run, events.
SELECT baton.create_queue('emails', max_attempts => 1);
SELECT baton.create_queue('inventory', concurrency => 4);
SELECT baton.create_queue('payments');
SELECT baton.create_queue('idle');
-- emails: one succeeded, one failed (attempts spent), one pending with a <script> payload
SELECT baton.enqueue('emails', '{"to": "ada@example.com"}');
SELECT baton.enqueue('emails', '{"to": "bob@example.com"}');
SELECT baton.complete(c.id, c.attempt, '{"sent": true}') FROM baton.claim('{emails}', 'seed', 1) AS c;
SELECT baton.fail(c.id, c.attempt, 'smtp said no') FROM baton.claim('{emails}', 'seed', 1) AS c;
SELECT baton.enqueue('emails', '{"note": "<script>alert(1)</script>"}');
-- a workflow: reserve (inventory) then charge (payments); the run waits at reserve
SELECT baton.define_workflow('order', '{"steps": {
    "reserve": {"queue": "inventory"},
    "charge":  {"queue": "payments", "after": ["reserve"]}}}');
SELECT baton.start('order', '{"id": "o-1"}');
-- events
SELECT baton.subscribe('pay-on-order', 'order.placed', queue => 'payments');
SELECT baton.publish('order.placed', '{"total": 250}', key => 'o-1');
SELECT baton.schedule('nightly', '0 3 * * *', queue => 'emails', payload => '{"digest": true}');
