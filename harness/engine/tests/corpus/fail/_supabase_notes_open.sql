-- The broken variant of scenarios/fixtures/supabase_notes.sql: its select policy is
-- `USING (true)`, so every signed-in user reads every user's notes.
CREATE TABLE notes (
    id bigserial PRIMARY KEY,
    owner uuid NOT NULL DEFAULT auth.uid() REFERENCES auth.users (id) ON DELETE CASCADE,
    body text NOT NULL
);
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY notes_select ON notes FOR SELECT TO authenticated USING (true);
CREATE POLICY notes_insert ON notes FOR INSERT TO authenticated WITH CHECK (owner = auth.uid());
