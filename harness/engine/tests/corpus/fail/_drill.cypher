CREATE (d:${scenario.graph_label}:Deck {title: 'organic chemistry'})-[:HAS]->(:${scenario.graph_label}:Card {front: 'benzene'}), (d)-[:HAS]->(:${scenario.graph_label}:Card {front: 'toluene'})
