-- The data of the drill cases: decks and their cards.
CREATE TABLE decks (id int PRIMARY KEY, title text NOT NULL);
CREATE TABLE cards (id int PRIMARY KEY, deck int NOT NULL REFERENCES decks (id), front text NOT NULL);
INSERT INTO decks VALUES (1, 'organic chemistry'), (2, 'graph theory');
INSERT INTO cards VALUES (1, 1, 'benzene'), (2, 1, 'toluene'), (3, 2, 'a tree');
