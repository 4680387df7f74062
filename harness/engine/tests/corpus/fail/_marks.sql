create table marks (what text);
